"""Top-1 / top-5 accuracy of a model on a dataset's evaluation split.

    # the ported reference weights on ImageNet validation (expect 73.98% / 91.46%):
    ghostnet-evaluate --width=1.0 --weights=imagenet --manual_dir=/data/imagenet
    # a trained run:
    python -m ghostnet_keras.training.evaluate --model=runs/quickstart/model.keras
    --dataset=quickstart

Evaluation preprocessing is the reference one (resize the shorter side to 256 with bicubic
interpolation, centre crop 224, for `--image_size=224`), from the training input pipeline.
The model flags are `ghostnet_keras.cli.model_flags`'s (as in the export commands).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from absl import app, flags, logging

from ghostnet_keras.cli import model_flags
from ghostnet_keras.cli import runner as cli
from ghostnet_keras.training.onednn import prefer_onednn

FLAGS = flags.FLAGS


def define_flags() -> None:
    """Defines the command-line flags (only when run as a program, so that importing
    this module never clashes with another module's flags)."""
    model_flags.define_flags(input_size=None)
    flags.DEFINE_string(
        "dataset", "imagenet2012", "Dataset name (see ghostnet_keras.training.datasets.DATASETS)."
    )
    flags.DEFINE_string("split", None, "Split (default: the dataset's evaluation split).")
    flags.DEFINE_integer("image_size", 224, "Evaluation crop size.", lower_bound=1)
    flags.DEFINE_integer("batch_size", 64, "Batch size.", lower_bound=1)
    flags.DEFINE_string("data_dir", None, "tensorflow-datasets data dir.")
    flags.DEFINE_string("manual_dir", None, "Folder with the ILSVRC2012 tars (imagenet2012).")
    flags.DEFINE_string("folder", None, "Image folder root for image_folder.")


def evaluate_model(
    model: Any, dataset: str, *, split: str | None = None, image_size: int = 224,
    batch_size: int = 64, data_dir: str | None = None, manual_dir: str | None = None,
    folder: str | None = None,
) -> dict[str, float]:
    """Returns `{"top1": ..., "top5": ..., "examples": n}` of `model` on the eval split."""
    import numpy as np

    from ghostnet_keras.training import datasets
    from ghostnet_keras.training import input_pipeline as data

    info = datasets.dataset_info(dataset, data_dir=data_dir, manual_dir=manual_dir, folder=folder)
    split = split or info.eval_split
    batches = data.build_dataset(
        dataset, split, image_size=image_size, batch_size=batch_size, training=False,
        data_dir=data_dir, manual_dir=manual_dir, folder=folder,
    )
    top1 = top5 = count = 0
    for images, labels in batches:
        scores = np.asarray(model.predict_on_batch(images))
        labels = labels.numpy()
        best = np.argsort(-scores, axis=1)[:, :5]
        top1 += int((best[:, 0] == labels).sum())
        top5 += int((best == labels[:, None]).any(axis=1).sum())
        count += len(labels)
    if not count:
        raise ValueError(f"split {split!r} of {dataset!r} is empty.")
    return {"top1": top1 / count, "top5": top5 / count, "examples": count}


def image_size(spec: model_flags.ModelSpec, values: Any) -> int:
    """The crop size: `--image_size`, or a square `--input_size` (they must agree)."""
    if spec.input_size is None:
        return values.image_size
    height, width = spec.input_size
    if height != width:
        raise app.UsageError(f"evaluation crops squares; --input_size={height},{width} is not.")
    if values["image_size"].present and values.image_size != height:
        raise app.UsageError(f"--input_size={height} and --image_size={values.image_size} "
                             "disagree; the crop must fit the model.")
    return height


def main(argv: Sequence[str]) -> None:
    del argv
    spec = model_flags.model_spec(FLAGS, require_weights=True)
    if spec.model is not None and spec.size_given:
        raise app.UsageError("--input_size would be ignored: a --model file is evaluated as it "
                             "is (--image_size sets the crop).")
    size = image_size(spec, FLAGS)
    if not FLAGS["verbosity"].present:
        logging.set_verbosity(logging.WARNING)
    model = model_flags.load(spec)
    result = evaluate_model(
        model, FLAGS.dataset, split=FLAGS.split, image_size=size,
        batch_size=FLAGS.batch_size, data_dir=FLAGS.data_dir, manual_dir=FLAGS.manual_dir,
        folder=FLAGS.folder,
    )
    print(json.dumps(result))


def main_entry() -> None:
    """Console-script entry point (`ghostnet-evaluate`)."""
    prefer_onednn()
    cli.run(main, define_flags)


if __name__ == "__main__":
    main_entry()
