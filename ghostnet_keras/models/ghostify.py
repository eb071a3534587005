"""`ghostify`: turns the ordinary convolutions of a Keras model into Ghost modules.

The paper's plug-and-play claim: replacing each conv by a Ghost module with the same output
channels costs about `1/s` of its parameters and multiply-adds at nearly the same accuracy.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterable
from typing import Any

import keras

from ghostnet_keras.layers.blocks import ghost_module

# Suffixes of the layers that replace a conv named `conv`: `{conv}_{part}`.
_GHOST_PARTS = ("primary_conv", "primary_bn", "cheap_dwconv", "cheap_bn", "concat", "trim", "act")

Keep = Iterable[str] | Callable[[keras.layers.Layer], bool] | None


def _is_graph_model(model: keras.Model) -> bool:
    return isinstance(model, keras.Sequential) or type(model).__name__ == "Functional" or (
        hasattr(model, "_operations_by_depth") and hasattr(model, "_nodes_by_depth")
    )


def _as_functional(model: keras.Model) -> keras.Model:
    """A functional view of a Sequential model (same layers); functional models unchanged."""
    if not isinstance(model, keras.Sequential):
        return model
    try:
        inputs = model.inputs
    except AttributeError:  # a Sequential model that was never given an input shape
        inputs = None
    if not inputs:
        raise ValueError(
            f"ghostify needs a built Sequential model with a known input shape; {model.name!r} "
            "has none. Start it with keras.Input(shape=...)."
        )
    return keras.Model(model.inputs, model.outputs, name=model.name)


def is_replaceable_conv(layer: keras.layers.Layer) -> bool:
    """Whether `ghostify` replaces `layer`: a plain 2D convolution (not depthwise, separable,
    transposed or grouped), in either data format."""
    return isinstance(layer, keras.layers.Conv2D) and getattr(layer, "groups", 1) == 1


def _keep_predicate(keep: Keep, graph: keras.Model) -> Callable[[keras.layers.Layer], bool]:
    if keep is None:
        convs = [layer for layer in graph.layers if isinstance(layer, keras.layers.Conv2D)]
        first = convs[0].name if convs else None
        return lambda layer: layer.name == first
    if callable(keep):
        return keep
    if isinstance(keep, str):
        raise TypeError("`keep` must be a collection of layer names or a predicate, not a str.")
    names = set(keep)
    unknown = names - {layer.name for layer in graph.layers}
    if unknown:
        raise ValueError(
            f"`keep` names layers that {graph.name!r} does not have: {sorted(unknown)}"
        )
    return lambda layer: layer.name in names


def ghostify(
    model: keras.Model,
    ratio: int = 2,
    dw_size: int = 3,
    keep: Keep = None,
    copy_weights: bool = True,
    name: str | None = None,
    input_tensors: Any = None,
) -> keras.Model:
    """Returns a copy of `model` in which ordinary `Conv2D` layers are Ghost modules.

    Each replaced conv becomes a Ghost module with the same output channels, kernel, strides,
    padding and dilation: a primary conv to `ceil(filters / ratio)` channels (no bias) + BN, a
    `dw_size x dw_size` depthwise "cheap" conv + BN, concatenated (and trimmed if `ratio` does
    not divide `filters`). The module replaces the conv alone: the model's own BN and
    activation layers after it stay where they are; an activation fused into the conv
    (`Conv2D(..., activation="relu")`, as in VGG16) is applied after the module. Every other
    layer and connection is kept, with its weights when `copy_weights=True`. Layers are named
    after the conv they replace (`{conv}_primary_conv`, `{conv}_cheap_dwconv`, ...).

    Depthwise, separable and transposed convs are not ordinary convs and are kept; a grouped
    conv (`groups > 1`) is kept with a warning. Channels-first convs become channels-first
    Ghost modules (each module takes the data format of the conv it replaces).

    Reference:
        [GhostNet: More Features from Cheap Operations](https://arxiv.org/abs/1911.11907),
        section 4.1 (Ghost-VGG-16, Ghost-ResNet-56, Ghost-ResNet-50).

    Example:

    ```python
    resnet = keras.applications.ResNet50(weights=None)
    ghost_resnet = ghostnet_keras.ghostify(resnet, ratio=2, dw_size=3)
    ```

    Args:
        model: a Functional or Sequential Keras model (nested functional models are rewritten
            too). Subclassed models have no graph to rewrite and are rejected.
        ratio: `s`, intrinsic-to-output ratio of every Ghost module (integer >= 2).
        dw_size: `d`, kernel of the cheap depthwise conv (odd integer >= 1).
        keep: which convs stay ordinary: `None` (default) keeps the network's first conv, as
            the paper does; a collection of layer names keeps those (`()` replaces every conv);
            a predicate `fn(layer) -> bool` keeps the layers it returns `True` for.
        copy_weights: copy the weights of every kept layer from `model`.
        name: name of the new model. Defaults to `"ghost_{model.name}"`.
        input_tensors: optional Keras tensors to build the new model on (as in
            `keras.models.clone_model`); new `Input`s by default.

    Returns:
        A new functional `keras.Model`; `model` is not modified.

    Raises:
        TypeError: for a subclassed model or a bad `keep`.
        ValueError: for bad `ratio`/`dw_size`, unknown `keep` names, or a name clash between
            the new layers and existing ones.
    """
    if not isinstance(model, keras.Model):
        raise TypeError(f"ghostify expects a keras.Model, got {type(model).__name__}.")
    if not _is_graph_model(model):
        raise TypeError(
            f"ghostify cannot rewrite {model.name!r}: it is a subclassed model "
            f"({type(model).__name__}) with no layer graph. Build it as a Functional or "
            "Sequential model."
        )
    if isinstance(ratio, bool) or not isinstance(ratio, int) or ratio < 2:
        raise ValueError(f"`ratio` must be an integer >= 2; received {ratio!r}.")
    if isinstance(dw_size, bool) or not isinstance(dw_size, int) or dw_size < 1 or not dw_size % 2:
        raise ValueError(f"`dw_size` must be an odd integer >= 1; received {dw_size!r}.")

    graph = _as_functional(model)
    keep_layer = _keep_predicate(keep, graph)
    replaced: set[str] = set()
    for layer in _all_layers(graph):
        if not isinstance(layer, keras.layers.Conv2D) or keep_layer(layer):
            continue
        if getattr(layer, "groups", 1) > 1:
            warnings.warn(
                f"ghostify keeps {layer.name!r}: grouped convolutions (groups={layer.groups}) "
                "are not replaced.", stacklevel=2,
            )
        elif is_replaceable_conv(layer):
            replaced.add(layer.name)
    existing = {layer.name for layer in _all_layers(graph)}
    clashes = sorted(existing & {f"{conv}_{part}" for conv in replaced for part in _GHOST_PARTS})
    if clashes:
        raise ValueError(
            f"ghostify cannot name the new layers: {graph.name!r} already has layers named "
            f"{clashes}. Rename them first."
        )

    def call_function(layer: keras.layers.Layer, *args: Any, **kwargs: Any) -> Any:
        if layer.name not in replaced:
            return layer(*args, **kwargs)
        out = ghost_module(
            args[0], layer.filters, kernel_size=layer.kernel_size, ratio=ratio, dw_size=dw_size,
            strides=layer.strides, activation=False, padding=layer.padding,
            dilation_rate=layer.dilation_rate, name=layer.name, data_format=layer.data_format,
        )
        if layer.activation not in (None, keras.activations.linear):
            out = keras.layers.Activation(layer.activation, name=f"{layer.name}_act")(out)
        return out

    clone = keras.models.clone_model(
        graph, input_tensors=input_tensors, call_function=call_function, recursive=True
    )
    inputs = clone.input if input_tensors is None else input_tensors
    new_model = keras.Model(inputs, clone.output, name=name or f"ghost_{model.name}")
    if copy_weights:
        originals = {layer.name: layer for layer in _all_layers(graph)}
        for layer in _all_layers(new_model):
            source = originals.get(layer.name)
            if source is not None and source.weights and layer.name not in replaced:
                layer.set_weights(source.get_weights())
    return new_model


def _all_layers(model: keras.Model) -> list[keras.layers.Layer]:
    """Layers of `model` and of the functional models nested in it, depth first."""
    layers = []
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            layers.extend(_all_layers(layer))
        else:
            layers.append(layer)
    return layers
