"""Quantization-aware training (QAT) of GhostNet with TensorFlow Model Optimization (tfmot).

tfmot only quantizes tf_keras (Keras 2) models, so the QAT model is the same GhostNet graph
built with `tf_keras` (`ghostnet_keras.ghostnet.build_ghostnet(..., keras_module=tf_keras)`, the
one definition of the architecture), given the float Keras 3 model's weights by layer name, then
made quantization-friendly and wrapped by `quantize_annotate_model` + `quantize_apply`.

`tf_keras` and `tensorflow_model_optimization` are imported only inside the functions that need
them: importing tfmot sets `TF_USE_LEGACY_KERAS=1`, after which TensorFlow's keras attribute
silently means tf_keras for the whole process. Importing this module does neither.

What the default 8-bit scheme does not cover, and what is done about it:

- `Multiply` (squeeze-excite "excite"): not in the registry; annotated with an output-only
  `QuantizeConfig` (8-bit, per tensor, moving-average range).
- `Rescaling`: not in the registry, and a `QuantizeConfig` cannot fix it: it lowers to two TFLite
  ops (MUL then ADD) and the tensor between them has no range, so both stay float in the
  converted model. It is rewritten before annotation: the squeeze-excite gate scale
  `x / 6 + 0.5` is folded into the `expand_conv` before it (kernel / 6, bias / 6 + 0.5: exact),
  and the input `preprocessing` (per-channel scale and offset) becomes a frozen 1x1
  `DepthwiseConv2D` with the same name (one int8 DEPTHWISE_CONV_2D).
- `ReLU(max_value=1.0)` (the gate clip): the registry accepts it, but it lowers to RELU, MINIMUM,
  RELU with unquantized tensors in between, which stay float. It becomes a plain `ReLU` whose
  output quantizer has the fixed range [0, 1]: the fake quantization clamps at 1 (the same
  forward and straight-through gradient as the clip), and in TFLite the gate is the expand
  CONV_2D with a fused RELU whose int8 output saturates at 1.
- `ZeroPadding2D`, `Concatenate`, `GlobalAveragePooling2D(keepdims=True)`, `Add`, `Flatten`,
  `Dropout`, `ReLU`, `Dense`, `Conv2D`, `DepthwiseConv2D`: covered by the registry.
- BatchNormalization: every BN of GhostNet follows a `Conv2D` or a `DepthwiseConv2D`, the
  patterns of the scheme's `Conv2DBatchNorm(ReLU)Quantize` transforms; no fake quantization is
  put between conv, BN and ReLU, and the TFLite converter folds BN into the conv.

The converted model (`convert_qat`) is integer end to end: CONV_2D, DEPTHWISE_CONV_2D, PAD,
CONCATENATION, ADD, MUL, MEAN, FULLY_CONNECTED (+ SOFTMAX), plus int8 -> int8 QUANTIZE
(requantization of one input of each concatenation to the output scale), with a float QUANTIZE
/ DEQUANTIZE only at the model boundary unless `int8_io`.

Files of `train_qat` in `model_dir`: `qat_backup/` (resume state, removed at the end),
`qat_history.csv`, `qat_history.json` and `qat_saved_model/` (the QAT model for conversion).
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # heavy imports, for type checkers only
    import keras
    import tensorflow as tf
    import tf_keras

    from ghostnet_keras.training.configs import TrainConfig
    from ghostnet_keras.training.loop import DataSource

BACKUP_DIR = "qat_backup"
HISTORY_CSV = "qat_history.csv"
HISTORY_JSON = "qat_history.json"
TFLITE_SIGNATURE = "tflite_batch_1"  # the batch-1 signature save_qat_model adds
SAVED_MODEL_DIR = "qat_saved_model"
QAT_LEARNING_RATE_FACTOR = 0.01
"""Default QAT peak learning rate: this fraction of the recipe's (cosine decay, no warm-up).

Measured on quickstart (3 QAT epochs from the 15-epoch float model, 97.8% on the 500 test
digits): int8 TFLite 98.0% with 1/100 of the peak rate, 97.2% with 1/10 (which perturbs the
converged model: 96.6% after its first epoch)."""


def _qat_modules() -> tuple[ModuleType, ModuleType]:
    """Imports tf_keras and tfmot (which sets `TF_USE_LEGACY_KERAS=1` for the process)."""
    try:
        import tensorflow_model_optimization as tfmot
        import tf_keras
    except ImportError as error:
        raise ImportError(
            f"Quantization-aware training needs the 'qat' extra ({error.name} is missing): "
            "pip install -e '.[qat]' (pinned tf_keras and tensorflow-model-optimization)."
        ) from error

    return tf_keras, tfmot


@functools.cache
def _quantize_config_class() -> type:
    """The `OutputQuantizeConfig` class (defined lazily: its base class is tfmot's)."""
    _, tfmot = _qat_modules()
    quantize = tfmot.quantization.keras

    class OutputQuantizeConfig(quantize.QuantizeConfig):
        """Quantizes only a layer's output, 8-bit per tensor, asymmetric.

        With `fixed_range=None` the range is a moving average of the observed min/max (as the
        default scheme does for layer outputs); with `fixed_range=(low, high)` it is fixed, and
        the fake quantization also clamps the output to it.
        """

        def __init__(self, fixed_range: Iterable[float] | None = None) -> None:
            self.fixed_range = None if fixed_range is None else tuple(map(float, fixed_range))

        def get_weights_and_quantizers(self, layer: Any) -> list:
            return []

        def get_activations_and_quantizers(self, layer: Any) -> list:
            return []

        def set_quantize_weights(self, layer: Any, quantize_weights: list) -> None:
            pass

        def set_quantize_activations(self, layer: Any, quantize_activations: list) -> None:
            pass

        def get_output_quantizers(self, layer: Any) -> list:
            if self.fixed_range is not None:
                low, high = self.fixed_range
                return [quantize.quantizers.FixedQuantizer(
                    num_bits=8, init_min=low, init_max=high, narrow_range=False)]
            return [quantize.quantizers.MovingAverageQuantizer(
                num_bits=8, per_axis=False, symmetric=False, narrow_range=False)]

        def get_config(self) -> dict[str, Any]:
            return {"fixed_range": None if self.fixed_range is None else list(self.fixed_range)}

    return OutputQuantizeConfig


def custom_objects() -> dict[str, type]:
    """The objects to pass to `tfmot.quantization.keras.quantize_scope` to load a QAT model."""
    return {"OutputQuantizeConfig": _quantize_config_class()}


def quantize_scope() -> Any:
    """`tfmot.quantization.keras.quantize_scope` with this module's custom objects."""
    _, tfmot = _qat_modules()
    return tfmot.quantization.keras.quantize_scope(custom_objects())


# --------------------------------------------------------------------------------------------
# Building the QAT model


def _classifier_activation(model: Any) -> str | None:
    """`"softmax"` or `None` (logits), as the `predictions` layer of `model` has."""
    from ghostnet_keras.heads import activation_name

    try:
        name = activation_name(model.get_layer("predictions"))
    except ValueError as error:
        raise ValueError(f"{model.name!r} has no `predictions` layer: not a GhostNet classifier "
                         "(QAT needs the full model, include_top=True).") from error
    if name not in ("softmax", "linear"):
        raise ValueError(f"QAT supports a softmax or linear classifier; {model.name!r} has "
                         f"activation {name!r}.")
    return "softmax" if name == "softmax" else None


def build_tf_keras_model(
    float_model: keras.Model,
    *,
    width: float,
    num_classes: int,
    image_size: int,
    dropout_rate: float = 0.2,
) -> tf_keras.Model:
    """The float GhostNet rebuilt with tf_keras, holding `float_model`'s weights.

    Same graph and layer names as `ghostnet_keras.GhostNet` (built by the same
    `build_ghostnet`), same classifier activation (softmax or none) and the same preprocessing
    (included or not) as `float_model`; its outputs equal `float_model`'s.

    Args:
        float_model: a trained GhostNet (Keras 3, or tf_keras) with its classification head.
        width: GhostNet width multiplier of `float_model`.
        num_classes: number of classes of `float_model`.
        image_size: input height and width.
        dropout_rate: dropout before the classifier (only used in training).

    Raises:
        ghostnet_keras.weights.WeightsError: `float_model` does not fit these arguments.
    """
    tf_keras, _ = _qat_modules()
    from ghostnet_keras.ghostnet import build_ghostnet
    from ghostnet_keras.weights import copy_weights_by_name

    include_preprocessing = any(layer.name == "preprocessing" for layer in float_model.layers)
    model = build_ghostnet(
        width=float(width),
        include_top=True,
        input_shape=(image_size, image_size, 3),
        classes=num_classes,
        classifier_activation=_classifier_activation(float_model),
        dropout_rate=dropout_rate,
        include_preprocessing=include_preprocessing,
        name=float_model.name,
        keras_module=tf_keras,
    )
    copy_weights_by_name(float_model, model)
    return model


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

    Every other layer is copied (config and weights).

    Returns:
        The rewritten model and `{relu layer name: (0, max_value)}` for the capped ReLUs.

    Raises:
        ValueError: a layer that is used more than once, or a `Rescaling` that can be neither
            folded nor made a depthwise conv.
    """
    import numpy as np
    import tensorflow as tf

    tf_keras, _ = _qat_modules()
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
        else:
            new = type(layer).from_config(config)
        tensors[id(old_output)] = new(*args, **kwargs)
        if weights:
            new.set_weights(weights)
        new_layers[layer.name] = new

    outputs = tf.nest.map_structure(new_tensor, model.outputs)
    inputs = tf.nest.map_structure(new_tensor, model.inputs)
    return tf_keras.Model(inputs, outputs, name=model.name), caps


def build_qat_model(
    float_model: keras.Model,
    *,
    width: float,
    num_classes: int,
    image_size: int,
    dropout_rate: float = 0.2,
) -> tf_keras.Model:
    """The quantization-aware (fake-quantized, tf_keras) version of a float GhostNet.

    Builds the same GhostNet with tf_keras (`build_tf_keras_model`), copies `float_model`'s
    weights by layer name, rewrites the layers the default 8-bit scheme cannot turn into int8
    TFLite ops (`quantization_friendly`: the gate scale folded into the SE expand conv, the input
    preprocessing as a frozen 1x1 depthwise conv, the gate clip as a fixed [0, 1] output
    quantizer), then applies `quantize_annotate_model` + `quantize_apply` (default 8-bit scheme)
    in a `quantize_scope` with an output-only `OutputQuantizeConfig` for `Multiply` and the
    capped ReLUs. Layer names get tfmot's `quant_` prefix.

    Call it inside `strategy.scope()` to train under a distribution strategy. The output ranges
    start at tfmot's defaults and are learned while training (`model.fit`), so fine-tune (or at
    least run some training-mode batches) before converting.

    Args:
        float_model: a trained GhostNet (Keras 3) with its classification head (softmax or
            logits; the QAT model has the same).
        width: GhostNet width multiplier of `float_model`.
        num_classes: number of classes of `float_model`.
        image_size: input height and width.
        dropout_rate: dropout before the classifier during QAT.

    Returns:
        The QAT `tf_keras.Model` (not compiled).
    """
    tf_keras, tfmot = _qat_modules()
    quantize = tfmot.quantization.keras
    config_class = _quantize_config_class()
    model = build_tf_keras_model(
        float_model, width=width, num_classes=num_classes, image_size=image_size,
        dropout_rate=dropout_rate,
    )
    model, caps = quantization_friendly(model, cap_relu_by_quantizer=True)

    def annotate(layer: Any) -> Any:
        if isinstance(layer, tf_keras.layers.Multiply):
            return quantize.quantize_annotate_layer(layer, config_class())
        if layer.name in caps:
            return quantize.quantize_annotate_layer(layer, config_class(caps[layer.name]))
        return layer

    with quantize_scope():
        annotated = tf_keras.models.clone_model(model, clone_function=annotate)
        annotated = quantize.quantize_annotate_model(annotated)
        return quantize.quantize_apply(annotated)


# --------------------------------------------------------------------------------------------
# Training


def _weight_decay_loss(model: tf_keras.Model, weight_decay: float) -> Callable[[], Any]:
    """`weight_decay * sum(||w||^2) / 2` over the trainable conv/dense kernels (grad += wd * w).

    The kernels are found by variable name: tfmot's wrappers replace a wrapped layer's `kernel`
    attribute by its fake-quantized tensor, so the layer attributes cannot be used.
    """
    import tensorflow as tf

    names = ("kernel", "depthwise_kernel")
    kernels = [
        v for v in model.trainable_weights if v.name.split("/")[-1].split(":")[0] in names
    ]
    return lambda: weight_decay * tf.add_n([tf.nn.l2_loss(k) for k in kernels])


def _history_callback(tf_keras: ModuleType, path: Path | None, rows: list[dict]) -> Any:
    """Keeps `rows` (one per finished epoch, across resumes) and writes them as JSON."""

    from ghostnet_keras.files import write_atomically

    class JsonHistory(tf_keras.callbacks.Callback):
        def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
            del rows[epoch:]  # a resumed run restarts at `epoch`; later rows are stale
            self._start = time.perf_counter()

        def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
            optimizer = self.model.optimizer
            row = {"epoch": epoch, **{k: float(v) for k, v in (logs or {}).items()}}
            rate = optimizer.learning_rate  # the current rate (a variable), or a schedule
            if isinstance(rate, tf_keras.optimizers.schedules.LearningRateSchedule):
                rate = rate(optimizer.iterations - 1)
            row["learning_rate"] = float(tf_keras.backend.get_value(rate))
            row["seconds"] = time.perf_counter() - self._start
            rows.append(row)
            if path is not None:
                write_atomically({path: json.dumps(rows, indent=2) + "\n"})

    return JsonHistory()


def save_qat_model(
    model: tf_keras.Model, target: str | os.PathLike, *, batch_size: int | None = None
) -> Path:
    """Saves a QAT model as a SavedModel; `target` appears (or is replaced) only when complete.

    The signature `serving_default` takes `images` of shape `(batch_size, H, W, 3)` (`None`:
    any batch), RGB in [0, 255] like the float model; unless `batch_size` is 1, the signature
    `TFLITE_SIGNATURE` takes a batch of exactly 1, so that `convert_qat` converts the SavedModel
    to a static-shape TFLite model without loading and re-saving it. It is saved without
    per-layer traces (`save_traces=False`: about 10x faster for GhostNet's ~300 layers);
    `tf_keras.models.load_model` still restores it inside `quantize_scope()`.

    Returns:
        The SavedModel directory.
    """
    import tensorflow as tf

    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    spec = model.inputs[0]

    def serve(batch: int | None) -> Any:
        return tf.function(
            lambda images: model(images, training=False),
            input_signature=[tf.TensorSpec((batch, *spec.shape[1:]), spec.dtype, name="images")],
        )

    # tf.functions, not concrete functions: under MultiWorkerMirroredStrategy a concrete
    # function over distributed variables cannot be saved.
    signatures = {"serving_default": serve(batch_size)}
    if batch_size != 1:
        signatures[TFLITE_SIGNATURE] = serve(1)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    old = None
    try:
        model.save(
            str(tmp), save_format="tf", include_optimizer=False, save_traces=False,
            signatures=signatures,
        )
        if target.exists():
            old = target.with_name(f".{target.name}.old-{os.getpid()}")
            os.replace(target, old)
        os.replace(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        if old is not None and not target.exists():
            os.replace(old, target)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
    return target


def load_qat_model(saved_model_dir: str | os.PathLike) -> tf_keras.Model:
    """Loads a QAT SavedModel written by `save_qat_model` / `train_qat` as a tf_keras model."""
    tf_keras, _ = _qat_modules()
    if not Path(saved_model_dir, "saved_model.pb").is_file():
        raise FileNotFoundError(f"No SavedModel at {saved_model_dir}.")
    with quantize_scope():
        return tf_keras.models.load_model(str(saved_model_dir), compile=False)


def load_float_model(path: str | os.PathLike) -> keras.Model:
    """Loads a trained float GhostNet (`.keras`, e.g. `runs/quickstart/model.keras`)."""
    import keras

    import ghostnet_keras  # noqa: F401  (registers the custom layers for load_model)

    path = Path(path)
    if path.suffix != ".keras" or not path.is_file():
        raise FileNotFoundError(f"--init_from must be an existing .keras model; got {path}.")
    return keras.models.load_model(path, compile=False)


def train_qat(
    config: TrainConfig,
    strategy: tf.distribute.Strategy,
    model_dir: str | os.PathLike,
    source: DataSource,
    init_from: str,
    epochs: int,
    learning_rate: float | None = None,
) -> list[dict]:
    """Quantization-aware fine-tuning of a trained float GhostNet with tf_keras `fit`.

    The QAT model (`build_qat_model`) is built inside `strategy.scope()` from the float model at
    `init_from` and trained on `config`'s dataset through
    `ghostnet_keras.training.data.build_dataset` (the
    recipe's augmentation and global batch), with SGD (the recipe's momentum and Nesterov
    flag) on a cosine schedule without warm-up from `learning_rate` (default: 1/100 of the
    recipe's peak rate, `QAT_LEARNING_RATE_FACTOR`), categorical cross-entropy with the
    recipe's label smoothing and the recipe's L2 weight decay on conv/dense kernels. tf_keras
    `fit` works under every strategy, `MultiWorkerMirroredStrategy` included (Keras 3 `fit`
    does not). A `OneDeviceStrategy` is replaced by the default strategy (same device), as
    tf_keras' `BackupAndRestore` rejects it.

    A restarted run resumes from `model_dir/qat_backup` (`BackupAndRestore`, at epoch
    boundaries). Writes `model_dir/qat_history.csv` (`CSVLogger`), `model_dir/qat_history.json`
    and at the end `model_dir/qat_saved_model` (a SavedModel of the QAT model, written to a
    temporary directory and renamed), which `convert_qat` turns into an int8 TFLite model. Only
    the chief writes these files.

    Args:
        config: the recipe (`ghostnet_keras.training.configs.TrainConfig`); `config.epochs` is not
        used.
        strategy: the distribution strategy.
        model_dir: the run directory.
        source: where the data comes from (`ghostnet_keras.training.loop.DataSource`).
        init_from: the trained float model, a `.keras` file.
        epochs: number of QAT epochs.
        learning_rate: peak learning rate; default `config.learning_rate / 100`.

    Returns:
        The history: one dict per finished epoch (`loss`, `accuracy`, `top5_accuracy`,
        `val_loss`, `val_accuracy`, `val_top5_accuracy`, `learning_rate`, `seconds`), this
        run's and the resumed run's. As tf_keras reports them, both losses include the label
        smoothing and the weight-decay term.
    """
    import tensorflow as tf

    from ghostnet_keras.training import data
    from ghostnet_keras.training.loop import is_chief

    if config.model != "ghostnet":
        raise ValueError(f"QAT supports model=ghostnet only; the config has {config.model!r}.")
    if epochs < 1:
        raise ValueError(f"epochs must be >= 1; got {epochs}.")
    tf_keras, _ = _qat_modules()
    model_dir = Path(model_dir)
    chief = is_chief(strategy)
    info = data.dataset_info(
        config.dataset, data_dir=source.data_dir, manual_dir=source.manual_dir,
        folder=source.folder, download=source.download,
    )
    num_train = info.num_examples[info.train_split]
    steps_per_epoch = config.steps_per_epoch or num_train // config.global_batch_size
    if steps_per_epoch < 1:
        raise ValueError(f"{config.dataset!r} has {num_train} training examples, fewer than one "
                         f"global batch of {config.global_batch_size}.")
    peak = config.learning_rate * QAT_LEARNING_RATE_FACTOR if learning_rate is None \
        else float(learning_rate)

    if isinstance(strategy, tf.distribute.OneDeviceStrategy):
        # tf_keras' BackupAndRestore rejects OneDeviceStrategy; the default strategy places the
        # model on the same device (the first GPU, else the CPU).
        strategy = tf.distribute.get_strategy()
    float_model = load_float_model(init_from)
    with strategy.scope():
        model = build_qat_model(
            float_model, width=config.width, num_classes=info.num_classes,
            image_size=config.image_size, dropout_rate=config.dropout_rate,
        )
        from_logits = _classifier_activation(float_model) is None
        if config.weight_decay:
            model.add_loss(_weight_decay_loss(model, config.weight_decay))
        schedule = tf_keras.optimizers.schedules.CosineDecay(
            initial_learning_rate=peak, decay_steps=epochs * steps_per_epoch)
        model.compile(
            optimizer=tf_keras.optimizers.SGD(
                learning_rate=schedule, momentum=config.momentum, nesterov=config.nesterov),
            loss=tf_keras.losses.CategoricalCrossentropy(
                from_logits=from_logits, label_smoothing=config.label_smoothing),
            metrics=[
                tf_keras.metrics.CategoricalAccuracy(name="accuracy"),
                tf_keras.metrics.TopKCategoricalAccuracy(
                    k=min(5, info.num_classes), name="top5_accuracy"),
            ],
        )
    del float_model

    def one_hot(images: Any, labels: Any) -> tuple[Any, Any]:
        return images, tf.one_hot(labels, info.num_classes)

    def train_fn(context: tf.distribute.InputContext) -> tf.data.Dataset:
        return data.build_dataset(
            config.dataset, info.train_split, image_size=config.image_size,
            batch_size=context.get_per_replica_batch_size(config.global_batch_size),
            training=True, data_dir=source.data_dir, manual_dir=source.manual_dir,
            folder=source.folder, download=source.download, input_context=context,
            seed=config.seed, repeat=True, augmentation=config.augmentation,
        ).map(one_hot)

    train_data = strategy.distribute_datasets_from_function(train_fn)
    eval_data = data.build_dataset(
        config.dataset, info.eval_split, image_size=config.image_size,
        batch_size=config.global_batch_size, training=False, data_dir=source.data_dir,
        manual_dir=source.manual_dir, folder=source.folder, download=source.download,
    ).map(one_hot)
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    eval_data = eval_data.with_options(options)

    model_dir.mkdir(parents=True, exist_ok=True)
    backup_dir = model_dir / BACKUP_DIR
    resuming = backup_dir.is_dir() and any(backup_dir.iterdir())
    json_path = model_dir / HISTORY_JSON
    rows: list[dict] = []
    if chief:
        if resuming and json_path.exists():
            rows = json.loads(json_path.read_text())
        elif not resuming:  # a fresh run: drop the files of an earlier, finished run
            for name in (HISTORY_CSV, HISTORY_JSON):
                (model_dir / name).unlink(missing_ok=True)
        csv_path = model_dir / HISTORY_CSV
    else:
        scratch = Path(tempfile.mkdtemp(prefix="qat_worker_"))
        csv_path = scratch / HISTORY_CSV
    # History before the backup: a crash in between redoes the epoch and replaces its row.
    callbacks = [
        _history_callback(tf_keras, json_path if chief else None, rows),
        tf_keras.callbacks.CSVLogger(str(csv_path), append=resuming),
        tf_keras.callbacks.BackupAndRestore(backup_dir=str(backup_dir)),
    ]
    model.fit(
        train_data, epochs=epochs, steps_per_epoch=steps_per_epoch,
        validation_data=eval_data, callbacks=callbacks, verbose=2 if chief else 0,
    )
    # Every worker saves (the variables are read collectively); all but the chief to a scratch
    # directory they delete again.
    save_qat_model(model, (model_dir if chief else scratch) / SAVED_MODEL_DIR)
    # BackupAndRestore empties its directory after a successful fit (each worker its part).
    with contextlib.suppress(OSError):
        backup_dir.rmdir()
    if chief:
        print(f"wrote {model_dir / SAVED_MODEL_DIR}", flush=True)
    else:
        shutil.rmtree(scratch, ignore_errors=True)
    return rows


# --------------------------------------------------------------------------------------------
# Conversion


def convert_qat(
    qat_model_or_saved_model_dir: tf_keras.Model | str | os.PathLike,
    io: str = "float",
    *,
    batch_size: int | None = 1,
) -> bytes:
    """The full-integer (int8) TFLite model of a QAT model (mode `qat_int8`).

    The fake-quantization ranges learned in training give the quantization parameters (no
    calibration), and `ghostnet_keras.tflite.verify` checks that no compute op reads or writes
    float tensors. A model is first saved as a temporary SavedModel (`save_qat_model`, without
    layer traces): several times faster than `TFLiteConverter.from_keras_model`, which traces
    every layer. A SavedModel is converted through its signature with the requested batch; one
    without such a signature is loaded and re-saved.

    Args:
        qat_model_or_saved_model_dir: a QAT model (`build_qat_model`, trained) or the SavedModel
            directory `train_qat` writes (`model_dir/qat_saved_model`).
        io: `"float"`, `"uint8"` or `"int8"` input and output tensors
            (`ghostnet_keras.tflite.conversion.convert`).
        batch_size: the batch dimension of the converted model (1: static shapes; `None`: the
            SavedModel's or a dynamic one).

    Returns:
        The `.tflite` bytes.
    """
    from ghostnet_keras.tflite.conversion import convert, signature_with_batch
    from ghostnet_keras.tflite.verify import ConversionError

    source = qat_model_or_saved_model_dir
    with tempfile.TemporaryDirectory(prefix="qat_convert_") as scratch:
        if isinstance(source, (str, os.PathLike)) and batch_size is not None:
            try:
                signature_with_batch(source, batch_size)
            except ConversionError:
                source = load_qat_model(source)
        if not isinstance(source, (str, os.PathLike)):
            source = save_qat_model(source, Path(scratch, "model"), batch_size=batch_size)
        return convert(str(source), "qat_int8", io=io, batch_size=batch_size)
