"""`reparameterize`: GhostNetV3's deploy form, with each group of parallel branches fused.

A GhostNetV3 in training form has three groups of parallel linear branches per block (see
`ghostnet_keras.layers.blocks_v2v3`): the primary 1x1 conv-BN branches (`{p}_primary_add`), the
cheap depthwise branches (`{p}_cheap_add`: 1x1 scale, identity BN, 3x3 conv-BN) and, in stride-2
blocks, the depthwise branches (`{b}_dw_add`: 1x1 scale and k x k conv-BN). In inference each
BN is an affine map, so each group is one conv with bias: the BN scale `gamma / sqrt(var + eps)`
is folded into the kernel, 1x1 and identity kernels are zero-padded to the centre of the k x k
kernel, and kernels and biases are summed (timm's `convert_to_deploy()`).
"""

from __future__ import annotations

import re
from typing import Any

import keras
import numpy as np

from ghostnet_keras.layers.blocks_v2v3 import V3_BRANCHES, depthwise_v3, v3_cheap, v3_primary
from ghostnet_keras.weights.strict import assign_layer_weights

# The add layer that closes each group of branches, and the layers of its branches.
_GROUP = re.compile(r"(?P<prefix>\w+?)_(?P<kind>primary|cheap|dw)_add")
_BRANCH = re.compile(
    r"\w+?_(primary\d+_(conv|bn)|cheap\d+_(dwconv|bn)|cheap_scale_(dwconv|bn)|cheap_skip_bn"
    r"|dw\d+_(pad|dwconv|bn)|dw_scale_(dwconv|bn))"
)


def _bn_affine(bn: keras.layers.BatchNormalization) -> tuple[np.ndarray, np.ndarray]:
    gamma, beta, mean, variance = (np.asarray(w, np.float64) for w in bn.get_weights())
    scale = gamma / np.sqrt(variance + bn.epsilon)
    return scale, beta - mean * scale


def _folded(conv: keras.layers.Layer, bn: keras.layers.Layer, size: int) -> tuple:
    """Kernel (padded to `size` x `size`, BN scale folded in) and bias of one conv-BN branch."""
    kernel = np.asarray(conv.get_weights()[0], np.float64)
    scale, bias = _bn_affine(bn)
    # Conv2D kernels are (kh, kw, in, out), depthwise ones (kh, kw, channels, 1).
    kernel = kernel * (scale[:, None] if isinstance(conv, keras.layers.DepthwiseConv2D) else scale)
    pad = (size - kernel.shape[0]) // 2
    return np.pad(kernel, ((pad, pad), (pad, pad), (0, 0), (0, 0))), bias


def _identity(bn: keras.layers.Layer, size: int) -> tuple:
    """The identity BN branch as a `size` x `size` depthwise kernel and bias."""
    scale, bias = _bn_affine(bn)
    kernel = np.zeros((size, size, scale.shape[0], 1))
    kernel[size // 2, size // 2, :, 0] = scale
    return kernel, bias


def _group_branches(model: keras.Model, prefix: str, kind: str) -> tuple[list, int, Any]:
    """The (conv, bn) pairs and identity BNs of a group, its kernel size and its input."""
    get = model.get_layer
    branches = [f"{prefix}_{kind}{i}" for i in range(V3_BRANCHES)]
    conv_part = "conv" if kind == "primary" else "dwconv"
    pairs = [(get(f"{b}_{conv_part}"), get(f"{b}_bn")) for b in branches]
    identities = []
    if kind != "primary":
        pairs.append((get(f"{prefix}_{kind}_scale_dwconv"), get(f"{prefix}_{kind}_scale_bn")))
    if kind == "cheap":
        identities.append(get(f"{prefix}_cheap_skip_bn"))
    size = pairs[0][0].kernel.shape[0]
    source = get(f"{branches[0]}_pad").input if kind == "dw" and size > 1 else pairs[0][0].input
    return pairs + [(None, bn) for bn in identities], size, source


def has_branches(model: keras.Model) -> bool:
    """Whether `model` has groups of parallel branches to fuse (a GhostNetV3 in training form)."""
    return any(_GROUP.fullmatch(layer.name) for layer in model.layers)


def fused_weights(model: keras.Model) -> dict[str, list[np.ndarray]]:
    """The deploy-form weights `{layer name: [kernel, bias]}` of each group of a GhostNetV3.

    Raises:
        ValueError: when `model` has no branch groups (not a training-form GhostNetV3).
    """
    if not has_branches(model):
        raise ValueError(
            f"{model.name!r} has no parallel branches to fuse: reparameterize() takes a "
            "GhostNetV3 in training form (GhostNetV3(reparameterized=False))."
        )
    fused = {}
    for layer in model.layers:
        match = _GROUP.fullmatch(layer.name)
        if match is None:
            continue
        prefix, kind = match["prefix"], match["kind"]
        parts, size, _ = _group_branches(model, prefix, kind)
        kernel, bias = 0.0, 0.0
        for conv, bn in parts:
            k, b = _folded(conv, bn, size) if conv is not None else _identity(bn, size)
            kernel, bias = kernel + k, bias + b
        target = {"primary": "primary_conv", "cheap": "cheap_dwconv", "dw": "dw_dwconv"}[kind]
        fused[f"{prefix}_{target}"] = [kernel.astype(np.float32), bias.astype(np.float32)]
    return fused


def _deploy_graph(model: keras.Model) -> keras.Model:
    """The same functional graph with each group of branches replaced by one conv."""
    tensors: dict[int, Any] = {}

    def mapped(value: Any) -> Any:
        if isinstance(value, (list, tuple)):
            return [tensors[id(v)] for v in value]
        return tensors[id(value)]

    for layer in model.layers:
        if isinstance(layer, keras.layers.InputLayer):
            tensors[id(layer.output)] = keras.Input(
                batch_shape=layer.output.shape, dtype=layer.output.dtype, name=layer.name
            )
            continue
        if _BRANCH.fullmatch(layer.name):
            continue
        match = _GROUP.fullmatch(layer.name)
        if match is not None:
            prefix, kind = match["prefix"], match["kind"]
            parts, size, source = _group_branches(model, prefix, kind)
            x = tensors[id(source)]
            if kind == "primary":
                y = v3_primary(x, parts[0][0].filters, True, name=prefix)
            elif kind == "cheap":
                y = v3_cheap(x, True, name=prefix)
            else:
                y = depthwise_v3(x, size, parts[0][0].strides[0], True, name=f"{prefix}_dw")
        else:
            clone = type(layer).from_config(layer.get_config())
            y = clone(mapped(layer.input))
        tensors[id(layer.output)] = y
    outputs = model.outputs if len(model.outputs) > 1 else model.outputs[0]
    return keras.Model(mapped(model.inputs), mapped(outputs), name=model.name)


def reparameterize(model: keras.Model, into: keras.Model | None = None) -> keras.Model:
    """Returns the deploy form of a GhostNetV3 in training form, with the same outputs.

    Every group of parallel conv-BN branches becomes one conv with bias (timm's
    `convert_to_deploy()`); all other layers keep their weights. The result has the layers,
    names and parameter count of `GhostNetV3(..., reparameterized=True)` and loads timm's
    deploy-form checkpoints. Its outputs equal the training form's in inference up to float32
    rounding (BatchNorm with its moving statistics; fine-tune the training form, not this).

    Example:

    ```python
    model = ghostnet_keras.GhostNetV3(weights="imagenet")
    deploy = ghostnet_keras.reparameterize(model)  # for TFLite, serving, ...
    ```

    Args:
        model: a GhostNetV3 in training form (any width, head or input size).
        into: optional GhostNetV3 deploy-form model of the same configuration to assign the
            weights to, instead of building a new one. Strict and all-or-nothing: a model
            without top ignores the head; any other difference raises `WeightsError` and
            `into` keeps its weights.

    Returns:
        The deploy-form model (`into` when given).
    """
    weights = {layer.name: layer.get_weights() for layer in model.layers
               if layer.weights and not _BRANCH.fullmatch(layer.name)}
    weights.update(fused_weights(model))
    deploy = into if into is not None else _deploy_graph(model)
    assign_layer_weights(deploy, weights, f"the fused weights of {model.name!r}")
    return deploy
