"""ImageNet-1k labels: the class index and `decode_predictions`.

The input normalisation (mean, std) lives in `ghostnet_keras.preprocessing`.

The class index (`data/imagenet_class_index.json`, index -> [WordNet id, name]) ships with the
package, so decoding works offline. Its order is the standard ILSVRC-2012 order (sorted WordNet
ids, identical to tensorflow-datasets' `imagenet2012` labels); the names are the first lemma of
each synset.
"""

from __future__ import annotations

import functools
import json
from importlib import resources
from typing import Any

import numpy as np

NUM_CLASSES = 1000



@functools.cache
def class_index() -> tuple[tuple[str, str], ...]:
    """Returns the 1000 ImageNet classes as `(wordnet_id, name)` pairs, in model output order."""
    text = resources.files("ghostnet_keras").joinpath("data/imagenet_class_index.json").read_text()
    table = json.loads(text)
    return tuple((table[str(i)][0], table[str(i)][1]) for i in range(len(table)))


def decode_predictions(preds: Any, top: int = 5) -> list[list[tuple[str, str, float]]]:
    """Decodes the prediction of an ImageNet model.

    Args:
        preds: NumPy array (or tensor) of shape `(samples, 1000)`: a batch of predictions.
        top: integer, how many top-guesses to return. Defaults to `5`.

    Returns:
        A list of lists of top class prediction tuples `(class_name, class_description,
        score)`. One list of tuples per sample in batch input.

    Raises:
        ValueError: in case of invalid shape of the `preds` array (must be 2D).
    """
    preds = np.asarray(preds)
    if preds.ndim != 2 or preds.shape[1] != NUM_CLASSES:
        raise ValueError(
            "`decode_predictions` expects a batch of predictions (i.e. a 2D array of shape "
            f"(samples, {NUM_CLASSES})). Received array with shape: {preds.shape}"
        )
    if top < 1:
        raise ValueError(f"`top` must be >= 1, got {top}.")
    classes = class_index()
    results = []
    for row in preds:
        best = np.argsort(row)[::-1][:top]
        results.append([(*classes[i], float(row[i])) for i in best])
    return results
