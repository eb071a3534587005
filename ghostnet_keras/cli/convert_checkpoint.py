"""Converts a reference PyTorch GhostNet checkpoint to Keras weights, without PyTorch.

Usage:

    ghostnet-convert --checkpoint=state_dict_73.98.pth --output=ghostnet_100.weights.h5
    python -m ghostnet_keras.cli.convert_checkpoint --checkpoint=model.safetensors --width=1.3 \
        --output=ghostnet_130.keras
    ghostnet-convert --model=ghostnetv2 --width=1.3 --checkpoint=model.safetensors \
        --output=ghostnetv2_130.weights.h5

The model (`ghostnet`, `ghostnetv2`, `ghostnetv3`) and width must be those of the checkpoint;
the number of classes is read from it, and a GhostNetV3 checkpoint without parallel branches
(timm's deploy form) is converted into the deploy form. The output is
written to a temporary file and moved into place only after the weights loaded strictly.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from absl import flags

from ghostnet_keras.cli import runner as cli

FLAGS = flags.FLAGS
# `--model` value -> `build_ghostnet(version=...)`.
MODELS = {"ghostnet": "v1", "ghostnetv2": "v2", "ghostnetv3": "v3"}


def define_flags() -> None:
    """Defines the command-line flags (only when run as a program, so that importing
    this module never clashes with another module's flags)."""
    flags.DEFINE_string("checkpoint", None, "Reference checkpoint (.pth, .pt, .bin, .safetensors).")
    flags.DEFINE_string("output", None, "Output file: `.weights.h5` (weights) or `.keras` (model).")
    flags.DEFINE_float("width", 1.0, "Width multiplier of the checkpoint's GhostNet.")
    flags.DEFINE_enum("model", "ghostnet", list(MODELS), "The checkpoint's GhostNet version.")
    flags.mark_flags_as_required(["checkpoint", "output"])


def convert_checkpoint(
    checkpoint: str | Path, output: str | Path, width: float = 1.0, model: str = "ghostnet"
) -> Path:
    """Converts a reference checkpoint into a Keras `.weights.h5` or `.keras` file.

    Args:
        checkpoint: path to a checkpoint in the reference PyTorch layout.
        output: destination, ending with `.weights.h5` or `.keras`.
        width: width multiplier of the checkpoint's model.
        model: `"ghostnet"`, `"ghostnetv2"` or `"ghostnetv3"`.

    A `.keras` output is in `keras.config.image_data_format()` (a `.weights.h5` file loads into
    either format).

    Returns:
        The path written.

    Raises:
        WeightsError: when the checkpoint does not fit a GhostNet of that width.
        ValueError: for an unreadable checkpoint or a bad output name.
    """
    from ghostnet_keras.weights.torch_files import read_state_dict

    if model not in MODELS:
        raise ValueError(f"`model` must be one of {tuple(MODELS)}; received {model!r}.")

    output = Path(output)
    if not output.name.endswith((".weights.h5", ".keras")):
        raise ValueError(f"--output must end with .weights.h5 or .keras; received {output}.")
    raw = read_state_dict(checkpoint)  # an unreadable file fails before Keras is imported
    from ghostnet_keras.layers.blocks_v2v3 import DEPLOY_FORM_VERSIONS, TRAINING_FORM_KEY
    from ghostnet_keras.models.arguments import any_size_input_shape
    from ghostnet_keras.models.ghostnet import create_ghostnet
    from ghostnet_keras.weights.loading import load_reference_state_dict, write_weights_atomically
    from ghostnet_keras.weights.reference_names import timm_state_dict
    from ghostnet_keras.weights.strict import WeightsError
    from ghostnet_keras.weights.torch_files import read_state_dict

    state_dict = timm_state_dict(raw)
    if "classifier.weight" not in state_dict:
        raise WeightsError(f"{checkpoint} has no tensor 'classifier.weight' (not a GhostNet).")
    classes = int(state_dict["classifier.weight"].shape[0])
    version = MODELS[model]
    keras_model = create_ghostnet(
        version, width=width, classes=classes, input_shape=any_size_input_shape(),
        reparameterized=version in DEPLOY_FORM_VERSIONS
        and not any(TRAINING_FORM_KEY in key for key in state_dict),
    )
    load_reference_state_dict(keras_model, state_dict, source=str(checkpoint))
    return write_weights_atomically(keras_model, output)


def main(argv: Sequence[str]) -> None:
    del argv
    if not Path(FLAGS.checkpoint).is_file():
        raise FileNotFoundError(f"No such checkpoint file: {FLAGS.checkpoint} (--checkpoint)")
    written = convert_checkpoint(FLAGS.checkpoint, FLAGS.output, FLAGS.width, FLAGS.model)
    print(f"wrote {written}")


def main_entry() -> None:
    """Console-script entry point (`ghostnet-convert`)."""
    cli.run(main, define_flags)


if __name__ == "__main__":
    main_entry()
