"""Command line: a GhostNet checkpoint -> a KerasHub preset folder.

```
ghostnet-hub-preset --checkpoint=model.safetensors --version=v1 --width=1.0 --output=ghostnet_100
ghostnet-hub-preset --checkpoint=ghostnetv3.pth --version=v3 --width=1.0 --image_size=256,256 \
    --num_classes=1000 --output=presets/ghostnetv3_100
```

The work is `ghostnet_keras.hub.presets.write_preset`; see docs/hub.md.
"""

from __future__ import annotations

from collections.abc import Sequence

from absl import app, flags

from ghostnet_keras.cli import runner
from ghostnet_keras.models.ghostnet import DEFAULT_SIZE, VERSIONS


def define_flags() -> None:
    """Defines the flags (only when run as a program: importing never defines flags)."""
    flags.DEFINE_string(
        "checkpoint", None,
        "Weights: a reference checkpoint (.safetensors, .pth, ...) or a .keras GhostNet.")
    flags.DEFINE_enum("version", "v1", list(VERSIONS), "GhostNet version of the checkpoint.")
    flags.DEFINE_float("width", 1.0, "Width multiplier of the checkpoint's GhostNet.")
    flags.DEFINE_list("image_size", [str(DEFAULT_SIZE)] * 2,
                      "Height,width the preset's image converter resizes to.")
    flags.DEFINE_integer("num_classes", 1000, "Classes of the checkpoint.", lower_bound=1)
    flags.DEFINE_boolean("reparameterized", False,
                         "GhostNetV3 deploy form (training-form checkpoints are fused).")
    flags.DEFINE_string("output", None, "The preset folder to create (must not exist).")
    flags.mark_flags_as_required(["checkpoint", "output"])


def parse_image_size(values: Sequence[str]) -> tuple[int, int]:
    """`["224", "224"]` (the flag's list) -> `(224, 224)`; one value is a square."""
    try:
        sizes = tuple(int(value) for value in values)
    except ValueError as error:
        raise app.UsageError(f"--image_size must be integers H,W; received {values}.") from error
    if len(sizes) == 1:
        sizes *= 2
    if len(sizes) != 2 or min(sizes) < 1:
        raise app.UsageError(f"--image_size must be H,W with positive sides; received {values}.")
    return sizes


def main(argv: Sequence[str]) -> None:
    del argv  # runner.run refuses stray arguments
    from ghostnet_keras.hub.presets import write_preset

    values = flags.FLAGS
    written = write_preset(
        values.checkpoint, values.output, version=values.version, width=values.width,
        num_classes=values.num_classes, image_size=parse_image_size(values.image_size),
        reparameterized=values.reparameterized,
    )
    print(f"wrote {written}")


def main_entry() -> None:
    """Console-script entry point (`ghostnet-hub-preset`)."""
    runner.run(main, define_flags)


if __name__ == "__main__":
    main_entry()
