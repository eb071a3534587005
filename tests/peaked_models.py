"""Random models whose outputs a wrong kernel would change: normalised, image-dependent
activations and a classifier whose logits spread over several units (a random 1000-class head
gives near-uniform outputs, on which almost any computation passes)."""

from __future__ import annotations

import keras
import numpy as np


def randomize(model: keras.Model, images: np.ndarray, seed: int = 0) -> keras.Model:
    """Random BN scales/offsets and biases; BN statistics from one training-mode pass over
    `images` (momentum 0), so that activations stay normalised and depend on the image."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            shape = layer.gamma.shape
            layer.set_weights([rng.uniform(0.5, 1.5, shape), rng.normal(0.0, 0.2, shape),
                               np.zeros(shape), np.ones(shape)])
            layer.momentum = 0.0
        elif isinstance(layer, (keras.layers.Conv2D, keras.layers.Dense)) and layer.use_bias:
            kernel, bias = layer.get_weights()
            layer.set_weights([kernel, rng.normal(0.0, 0.1, bias.shape)])
    model(images, training=True)
    return model


def spread_head(model: keras.Model, images: np.ndarray, components: int = 3) -> keras.Model:
    """Points the classifier (`predictions`) at the few directions in which `images`' features
    (`flatten`) differ most (PCA; random mixtures of them, logits of order 1-10), so that the
    top-1 depends on the image."""
    features = keras.Model(model.inputs, model.get_layer("flatten").output).predict(
        images, verbose=0)
    mean = features.mean(axis=0)
    _, _, directions = np.linalg.svd(features - mean, full_matrices=False)
    directions = directions[:components].T
    directions /= ((features - mean) @ directions).std(axis=0)
    head = model.get_layer("predictions")
    mixing = np.random.default_rng(1).normal(0.0, 3.0, (components, head.units))
    kernel = directions @ mixing
    head.set_weights([kernel, -mean @ kernel])
    return model


def peaked_ghostnet(width: float = 0.5, size: int = 64, classes: int = 10,
                    **kwargs: object) -> keras.Model:
    """A GhostNet (logits, no dropout) made non-trivial by `randomize` and `spread_head`."""
    from ghostnet_keras import GhostNet
    from ghostnet_keras.synthetic_images import synthetic_images

    keras.utils.set_random_seed(0)
    model = GhostNet(width=width, input_shape=(size, size, 3), classes=classes,
                     classifier_activation=None, dropout_rate=0.0, **kwargs)
    statistics = np.stack(list(synthetic_images(16, size, seed=3)()))
    return spread_head(randomize(model, statistics), statistics)
