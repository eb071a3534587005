"""`quantization_friendly`: rewrites a tf_keras model into one that quantizes to integer TFLite.

The default 8-bit scheme of tfmot leaves some layers float in the converted model (`Rescaling`
lowers to MUL + ADD with an unquantized tensor between them; `ReLU(max_value=m)` to RELU,
MINIMUM, RELU), and an int8 AVERAGE_POOL_2D is not an XNNPACK op. This rewrite removes them
without changing the function; docs/quantization.md says why each rule exists.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ghostnet_keras.tflite.integer_friendly import average_pool_as_depthwise

if TYPE_CHECKING:
    import tf_keras


def _is_keras_tensor(value: Any) -> bool:
    return type(value).__name__ == "KerasTensor"


def quantization_friendly(
    model: tf_keras.Model, *, cap_relu_by_quantizer: bool = False
) -> tuple[tf_keras.Model, dict[str, tuple[float, float]]]:
    """Rewrites a functional tf_keras model into an equivalent one that quantizes to int8 TFLite.

    - A `Rescaling` right after a linear `Conv2D`/`Dense` with bias that feeds nothing else is
      folded into it (`kernel * scale`, `bias * scale + offset`) and disappears.
    - A `Rescaling` with a positive scalar scale and no offset right after a `ReLU(max_value=m)`
      that follows such a conv (`relu_m(y) * s == relu_{m*s}(y * s)`) is moved into the conv
      too: the ReLU becomes `ReLU(max_value=m * s)` and takes the Rescaling's name (the
      squeeze-excite gate `relu6(y + 3) / 6` becomes the expand conv with kernel / 6 and
      bias / 6 + 0.5, then a ReLU capped at 1, named as the gate).
    - Any other `Rescaling` of a 4D tensor becomes a frozen 1x1 `DepthwiseConv2D` (kernel
      `scale`, bias `offset`) with the same name.
    - With `cap_relu_by_quantizer`, a `ReLU(max_value=m)` (m != 6; ReLU6 is a TFLite builtin)
      becomes a plain `ReLU` with the same name, and `(0, m)` is returned for it: the caller must
      give it an output quantizer with that fixed range, which then does the clipping. Without
      it, such ReLUs are kept and the rewritten model computes the same function.
    - A `valid` `AveragePooling2D` (the V2/V3 DFC gates') becomes the equal frozen
      `DepthwiseConv2D` with the same name (`tflite.integer_friendly`: XNNPACK has no int8
      average pool).

    Every other layer is copied (config and weights).

    Returns:
        The rewritten model and `{relu layer name: (0, max_value)}` for the capped ReLUs.

    Raises:
        ValueError: a layer that is used more than once, or a `Rescaling` that can be neither
            folded nor made a depthwise conv.
    """
    import numpy as np
    import tensorflow as tf
    import tf_keras

    layers = tf_keras.layers
    consumers: dict[str, int] = {}
    for layer in model.layers:
        if len(layer.inbound_nodes) > 1:
            raise ValueError(f"Layer {layer.name!r} is used more than once; cannot rewrite.")
        for node in layer.inbound_nodes:
            for inbound in tf.nest.flatten(node.inbound_layers):
                consumers[inbound.name] = consumers.get(inbound.name, 0) + 1

    tensors: dict[int, Any] = {}  # id(old symbolic tensor) -> new symbolic tensor
    new_layers: dict[str, Any] = {}
    caps: dict[str, tuple[float, float]] = {}

    def new_tensor(value: Any) -> Any:
        return tensors[id(value)] if _is_keras_tensor(value) else value

    def foldable_producer(tensor: Any, old_layer: Any) -> Any:
        """The new linear conv/dense with bias producing `tensor`, if only `old_layer` reads it."""
        producer = getattr(tensor, "_keras_history", (None,))[0]
        old_inbound = old_layer.inbound_nodes[0].inbound_layers
        if (
            isinstance(producer, (layers.Conv2D, layers.Dense))
            and not isinstance(producer, layers.DepthwiseConv2D)
            and getattr(producer.activation, "__name__", "") == "linear"
            and producer.use_bias
            and not isinstance(old_inbound, (list, tuple))
            and consumers.get(old_inbound.name) == 1
            and consumers.get(producer.name, 1) == 1
        ):
            return producer
        return None

    def scale_after(relu: Any) -> float | None:
        """The positive scalar scale of a no-offset Rescaling that alone reads `relu`."""
        readers = [layer for layer in model.layers if any(
            node.inbound_layers is relu for node in layer.inbound_nodes)]
        if consumers.get(relu.name) != 1 or len(readers) != 1:
            return None
        reader = readers[0]
        if not isinstance(reader, layers.Rescaling):
            return None
        scale = np.asarray(reader.get_config()["scale"], np.float64)
        offset = np.asarray(reader.get_config()["offset"], np.float64)
        if scale.size != 1 or float(scale) <= 0 or np.any(offset != 0):
            return None
        return float(scale)

    absorbed: dict[str, Any] = {}  # old Rescaling name -> the ReLU that took its scale

    for layer in model.layers:
        old_output = layer.output
        if layer.name in absorbed:
            tensors[id(old_output)] = absorbed[layer.name]
            continue
        if isinstance(layer, layers.InputLayer):
            tensors[id(old_output)] = tf_keras.Input(
                batch_shape=old_output.shape, dtype=old_output.dtype, name=layer.name)
            continue
        node = layer.inbound_nodes[0]
        args = tf.nest.map_structure(new_tensor, node.call_args)
        kwargs = tf.nest.map_structure(new_tensor, node.call_kwargs)
        weights = layer.get_weights()
        config = layer.get_config()
        if isinstance(layer, layers.Rescaling):
            scale = np.asarray(config["scale"], np.float32)
            offset = np.asarray(config["offset"], np.float32)
            producer = node.inbound_layers
            foldable = (
                isinstance(producer, (layers.Conv2D, layers.Dense))
                and not isinstance(producer, layers.DepthwiseConv2D)
                and getattr(producer.activation, "__name__", "") == "linear"
                and producer.use_bias
                and consumers.get(producer.name) == 1
            )
            if foldable:
                kernel, bias = producer.get_weights()
                new_layers[producer.name].set_weights([kernel * scale, bias * scale + offset])
                tensors[id(old_output)] = args[0] if isinstance(args, (tuple, list)) else args
                continue
            if len(old_output.shape) != 4:
                raise ValueError(f"Cannot quantize Rescaling {layer.name!r}: it is neither after "
                                 "a foldable linear conv/dense nor on a 4D tensor.")
            channels = int(old_output.shape[-1])
            new = layers.DepthwiseConv2D(1, use_bias=True, name=layer.name, trainable=False)
            weights = [
                np.broadcast_to(scale, (channels,)).reshape(1, 1, channels, 1),
                np.broadcast_to(offset, (channels,)).copy(),
            ]
        elif (
            isinstance(layer, layers.ReLU)
            and config.get("max_value") is not None
            and not config.get("negative_slope")
            and not config.get("threshold")
        ):
            max_value, name = float(config["max_value"]), layer.name
            producer = foldable_producer(args[0] if isinstance(args, (tuple, list)) else args,
                                         layer)
            scale = scale_after(layer) if producer is not None else None
            if scale is not None:
                kernel, bias = producer.get_weights()
                producer.set_weights([kernel * scale, bias * scale])
                max_value *= scale
                (reader,) = [other for other in model.layers if any(
                    node.inbound_layers is layer for node in other.inbound_nodes)]
                name = reader.name
            if cap_relu_by_quantizer and max_value != 6.0:
                caps[name] = (0.0, max_value)
                new = layers.ReLU(name=name)
            else:
                new = layers.ReLU(max_value=max_value, name=name)
            weights = []
            if scale is not None:
                output = new(*args, **kwargs)
                tensors[id(old_output)] = output
                absorbed[name] = output
                new_layers[name] = new
                continue
        elif isinstance(layer, layers.AveragePooling2D) and (
            pool := average_pool_as_depthwise(config, int(old_output.shape[-1]))
        ):
            arguments, kernel = pool
            new = layers.DepthwiseConv2D(**arguments)
            weights = [kernel]
        else:
            new = type(layer).from_config(config)
        tensors[id(old_output)] = new(*args, **kwargs)
        if weights:
            new.set_weights(weights)
        new_layers[layer.name] = new

    outputs = tf.nest.map_structure(new_tensor, model.outputs)
    inputs = tf.nest.map_structure(new_tensor, model.inputs)
    return tf_keras.Model(inputs, outputs, name=model.name), caps
