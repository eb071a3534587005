"""Command line: parameters and MACs of a named model or a `.keras` file (`ghostnet-profile`).

```
ghostnet-profile --model=GhostNetV2_100 --input_size=224 --per_layer
python -m ghostnet_keras.cli.profile --model=/path/to/model.keras --json
```
"""

from __future__ import annotations

import importlib
import json
import os
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from absl import app, flags

from ghostnet_keras.cli import runner as cli

if TYPE_CHECKING:
    import keras

# Model constructors by name (`module:attribute`, imported when used: a usage error needs no
# Keras); each takes keras.applications' `weights` and `input_shape` arguments.
BUILDERS: dict[str, str] = {
    "GhostNet050": "ghostnet_keras.models.ghostnet:GhostNet050",
    "GhostNet100": "ghostnet_keras.models.ghostnet:GhostNet100",
    "GhostNet130": "ghostnet_keras.models.ghostnet:GhostNet130",
    "GhostNetV2_100": "ghostnet_keras.models.ghostnet_v2v3:GhostNetV2_100",
    "GhostNetV2_130": "ghostnet_keras.models.ghostnet_v2v3:GhostNetV2_130",
    "GhostNetV2_160": "ghostnet_keras.models.ghostnet_v2v3:GhostNetV2_160",
    "GhostNetV3_100": "ghostnet_keras.models.ghostnet_v2v3:GhostNetV3_100",
    "GhostResNet50": "ghostnet_keras.models.ghost_resnet:GhostResNet50",
    "ResNet50": "keras.applications:ResNet50",
    "MobileNetV2": "keras.applications:MobileNetV2",
    "MobileNetV3Large": "keras.applications:MobileNetV3Large",
    "MobileNetV3Small": "keras.applications:MobileNetV3Small",
    "VGG16": "keras.applications:VGG16",
}


def builder(name: str) -> Callable[..., keras.Model]:
    """The constructor registered as `name` in `BUILDERS`."""
    module, attribute = BUILDERS[name].split(":")
    return getattr(importlib.import_module(module), attribute)


def define_flags() -> None:
    """Defines the flags (only when run as a program: importing never defines flags)."""
    flags.DEFINE_string(
        "model", "ResNet50",
        f"Model to profile: one of {', '.join(BUILDERS)} (built with weights=None), or a path "
        "to a .keras file.",
    )
    flags.DEFINE_integer(
        "input_size", 224,
        "Input height and width. For a .keras file it is only used when given explicitly or "
        "when the model's spatial dims are undefined.",
        lower_bound=1,
    )
    flags.DEFINE_boolean("per_layer", False, "Also print the per-layer table.")
    flags.DEFINE_boolean("json", False, "Print a JSON object instead of a table.")


def build_named_model(
    name_or_path: str, input_size: int, force_size: bool = True
) -> tuple[keras.Model, tuple[int, ...] | None]:
    """Builds a registered model or loads a `.keras` file.

    Args:
        name_or_path: A key of `BUILDERS` or a path to a `.keras` file.
        input_size: Input height and width.
        force_size: For `.keras` files, whether to profile at `input_size` even if the saved
            model has a fully defined input shape.

    Returns:
        `(model, input_shape)`; `input_shape` is `None` when the model's own input shape is
        to be used.

    Raises:
        ValueError: `name_or_path` is neither a registered name nor an existing `.keras` file.
    """
    if name_or_path in BUILDERS:
        shape = (input_size, input_size, 3)
        return builder(name_or_path)(weights=None, input_shape=shape), shape
    if name_or_path.endswith(".keras") and os.path.isfile(name_or_path):
        from ghostnet_keras.weights.keras_files import load_keras_file

        model = load_keras_file(name_or_path)
        inputs = model.inputs
        undefined = not inputs or any(d is None for d in inputs[0].shape[1:])
        if force_size or undefined:
            channels = inputs[0].shape[-1] if inputs else 3
            return model, (input_size, input_size, channels)
        return model, None
    raise ValueError(
        f"Unknown model {name_or_path!r}: expected one of {sorted(BUILDERS)} or an existing "
        ".keras file."
    )


def report(
    name_or_path: str, input_size: int, *, force_size: bool = True, per_layer: bool = False,
    as_json: bool = False,
) -> str:
    """What the command prints: the profile of `build_named_model(...)` as a table or JSON."""
    model, input_shape = build_named_model(name_or_path, input_size, force_size=force_size)
    from ghostnet_keras.analysis.profiler import profile

    result = profile(model, input_shape)
    if as_json:
        return json.dumps(result.to_dict(per_layer=per_layer), indent=2)
    return result.format_table(per_layer=per_layer)


def main(argv: Sequence[str]) -> None:
    del argv
    values = flags.FLAGS
    try:
        text = report(values.model, values.input_size, force_size=values["input_size"].present,
                      per_layer=values.per_layer, as_json=values.json)
    except ValueError as error:
        raise app.UsageError(str(error)) from error
    print(text)


def main_entry() -> None:
    """Console-script entry point (`ghostnet-profile`)."""
    cli.run(main, define_flags)


if __name__ == "__main__":
    main_entry()
