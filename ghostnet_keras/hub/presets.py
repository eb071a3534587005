"""Writing a KerasHub preset folder from a GhostNet checkpoint, atomically."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import keras
import numpy as np

from ghostnet_keras.hub.backbone import GhostNetBackbone
from ghostnet_keras.hub.flat_model import load_reference_weights
from ghostnet_keras.hub.image_classifier import GhostNetImageClassifier
from ghostnet_keras.hub.image_converter import GhostNetImageConverter
from ghostnet_keras.hub.preprocessor import GhostNetImageClassifierPreprocessor
from ghostnet_keras.models.ghostnet import DEFAULT_SIZE
from ghostnet_keras.preprocessing import normalize_input

# The preset is read back and checked against the checkpoint's model within this tolerance.
CHECK_ATOL = 1e-4
CHECK_SIZE = 64


def build_classifier(
    version: str = "v1",
    width: float = 1.0,
    num_classes: int = 1000,
    image_size: tuple[int, int] = (DEFAULT_SIZE, DEFAULT_SIZE),
    reparameterized: bool = False,
) -> GhostNetImageClassifier:
    """A channels-last `GhostNetImageClassifier` (random weights) with its preprocessor."""
    backbone = GhostNetBackbone(version=version, width=width, reparameterized=reparameterized,
                                data_format="channels_last")
    converter = GhostNetImageConverter(image_size=tuple(image_size))
    return GhostNetImageClassifier(
        backbone, num_classes,
        preprocessor=GhostNetImageClassifierPreprocessor(image_converter=converter),
    )


def write_preset(
    checkpoint: str | os.PathLike,
    output: str | os.PathLike,
    *,
    version: str = "v1",
    width: float = 1.0,
    num_classes: int = 1000,
    image_size: tuple[int, int] = (DEFAULT_SIZE, DEFAULT_SIZE),
    reparameterized: bool = False,
) -> Path:
    """Writes `checkpoint` as a KerasHub preset folder at `output` (which must not exist).

    The checkpoint (`.safetensors`, `.pth`, ... in the reference layout, or `.keras`) is loaded
    strictly into a `GhostNetImageClassifier` of that version, width and classes; the preset
    (`config.json`, `model.weights.h5`, `task.json`, `task.weights.h5`, `preprocessor.json`,
    `image_converter.json`, `metadata.json`) is written to a temporary folder beside `output`,
    read back with `keras_hub.models.ImageClassifier.from_preset` and compared with the
    checkpoint's model, then renamed to `output`.

    Returns:
        The preset folder.

    Raises:
        FileExistsError: `output` exists.
        WeightsError: the checkpoint does not fit (nothing is written).
        ValueError: bad arguments, or the preset read back differs.
    """
    import keras_hub

    output = Path(output)
    if output.exists():
        raise FileExistsError(f"{output} already exists; give a new preset folder.")
    if not Path(checkpoint).is_file():
        raise FileNotFoundError(f"No such checkpoint: {checkpoint}")
    classifier = build_classifier(version, width, num_classes, image_size, reparameterized)
    loaded = load_reference_weights(classifier, checkpoint)
    output.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=f".{output.name}.", dir=output.parent))
    try:
        classifier.save_to_preset(str(scratch))
        restored = keras_hub.models.ImageClassifier.from_preset(str(scratch))
        _check_same_outputs(loaded, restored)
        os.rename(scratch, output)
    except BaseException:
        shutil.rmtree(scratch, ignore_errors=True)
        raise
    return output


def _check_same_outputs(loaded: keras.Model, restored: keras.Model) -> None:
    """`restored` computes what the flat GhostNet the checkpoint was loaded into does."""
    if not isinstance(restored, GhostNetImageClassifier):
        raise ValueError(f"The preset reads back as {type(restored).__name__}.")
    images = np.random.default_rng(0).uniform(0, 255, (2, CHECK_SIZE, CHECK_SIZE, 3))
    normalized = normalize_input(images, "channels_last")
    want = keras.ops.convert_to_numpy(loaded(normalized, training=False))
    got = keras.ops.convert_to_numpy(restored(normalized, training=False))
    difference = float(np.max(np.abs(got - want)))
    if difference > CHECK_ATOL:
        raise ValueError(
            f"The preset read back differs from the checkpoint's model by {difference:.3g} "
            f"(more than {CHECK_ATOL}); nothing was written."
        )
