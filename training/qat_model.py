"""The quantization-aware GhostNet: the tf_keras twin of a float model, rewritten and annotated.

tfmot quantizes only tf_keras (Keras 2) models, so the QAT model is the same architecture built
by `ghostnet_keras.models.ghostnet.build_ghostnet(..., keras_module=tf_keras)` (the one definition),
given the float model's weights by layer name, made quantization-friendly
(`ghostnet_keras.training.quantization_friendly`) and wrapped by tfmot's `quantize_apply`.
What the default scheme does not cover and how it is handled: docs/quantization.md.

`tf_keras` and `tensorflow_model_optimization` are imported only inside the functions that need
them: importing tfmot sets `TF_USE_LEGACY_KERAS=1`, after which TensorFlow's keras attribute
silently means tf_keras for the whole process. Importing this module does neither.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from types import ModuleType
from typing import TYPE_CHECKING, Any

from ghostnet_keras.training.quantization_friendly import quantization_friendly

if TYPE_CHECKING:  # heavy imports, for type checkers only
    import keras
    import tf_keras


def qat_modules() -> tuple[ModuleType, ModuleType]:
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
    _, tfmot = qat_modules()
    quantize = tfmot.quantization.keras

    class OutputQuantizeConfig(quantize.QuantizeConfig):
        """Quantizes only a layer's output, 8-bit per tensor, asymmetric (or not at all).

        With `fixed_range=None` the range is a moving average of the observed min/max (as the
        default scheme does for layer outputs); with `fixed_range=(low, high)` it is fixed, and
        the fake quantization also clamps the output to it. With `quantize_output=False` the
        layer gets no quantizer: for layers that only move values (the output keeps the input's
        quantization, as TFLite requires of e.g. RESIZE_NEAREST_NEIGHBOR).
        """

        def __init__(
            self, fixed_range: Iterable[float] | None = None, quantize_output: bool = True
        ) -> None:
            self.fixed_range = None if fixed_range is None else tuple(map(float, fixed_range))
            self.quantize_output = bool(quantize_output)

        def get_weights_and_quantizers(self, layer: Any) -> list:
            return []

        def get_activations_and_quantizers(self, layer: Any) -> list:
            return []

        def set_quantize_weights(self, layer: Any, quantize_weights: list) -> None:
            pass

        def set_quantize_activations(self, layer: Any, quantize_activations: list) -> None:
            pass

        def get_output_quantizers(self, layer: Any) -> list:
            if not self.quantize_output:
                return []
            if self.fixed_range is not None:
                low, high = self.fixed_range
                return [quantize.quantizers.FixedQuantizer(
                    num_bits=8, init_min=low, init_max=high, narrow_range=False)]
            return [quantize.quantizers.MovingAverageQuantizer(
                num_bits=8, per_axis=False, symmetric=False, narrow_range=False)]

        def get_config(self) -> dict[str, Any]:
            return {
                "fixed_range": None if self.fixed_range is None else list(self.fixed_range),
                "quantize_output": self.quantize_output,
            }

    return OutputQuantizeConfig


def custom_objects() -> dict[str, type]:
    """The objects to pass to `tfmot.quantization.keras.quantize_scope` to load a QAT model."""
    return {"OutputQuantizeConfig": _quantize_config_class()}


def quantize_scope() -> Any:
    """`tfmot.quantization.keras.quantize_scope` with this module's custom objects."""
    _, tfmot = qat_modules()
    return tfmot.quantization.keras.quantize_scope(custom_objects())


# --------------------------------------------------------------------------------------------
# Building the QAT model


def classifier_activation(model: Any) -> str | None:
    """`"softmax"` or `None` (logits), as the `predictions` layer of `model` has."""
    from ghostnet_keras.export.contract import activation_name

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
    version: str = "v1",
) -> tf_keras.Model:
    """The float GhostNet rebuilt with tf_keras, holding `float_model`'s weights.

    Same graph and layer names as `ghostnet_keras.GhostNet` / `GhostNetV2` / `GhostNetV3`
    (built by the same `build_ghostnet`), same classifier activation (softmax or none) and the
    same preprocessing (included or not) as `float_model`; its outputs equal `float_model`'s.
    A GhostNetV3 becomes its deploy form (`ghostnet_keras.reparameterize`, when `float_model`
    is in training form): the parallel branches are a training device, and the fused convs are
    what TFLite runs, so they are what QAT fake-quantizes.

    Args:
        float_model: a trained GhostNet (Keras 3, or tf_keras) with its classification head.
        width: GhostNet width multiplier of `float_model`.
        num_classes: number of classes of `float_model`.
        image_size: input height and width.
        dropout_rate: dropout before the classifier (only used in training).
        version: `"v1"`, `"v2"` or `"v3"`, the GhostNet version of `float_model`.

    Raises:
        ghostnet_keras.weights.strict.WeightsError: `float_model` does not fit these arguments.
    """
    tf_keras, _ = qat_modules()
    from ghostnet_keras.layers.blocks_v2v3 import DEPLOY_FORM_VERSIONS
    from ghostnet_keras.models.ghostnet import build_ghostnet
    from ghostnet_keras.models.reparameterize import has_branches, reparameterize
    from ghostnet_keras.weights.strict import copy_weights_by_name

    if version in DEPLOY_FORM_VERSIONS and has_branches(float_model):
        float_model = reparameterize(float_model)

    include_preprocessing = any(layer.name == "preprocessing" for layer in float_model.layers)
    model = build_ghostnet(
        width=float(width),
        include_top=True,
        input_shape=(image_size, image_size, 3),
        classes=num_classes,
        classifier_activation=classifier_activation(float_model),
        dropout_rate=dropout_rate,
        include_preprocessing=include_preprocessing,
        name=float_model.name,
        keras_module=tf_keras,
        data_format="channels_last",  # TFLite is NHWC; the weights copy from either format
        version=version,
        reparameterized=version in DEPLOY_FORM_VERSIONS,
    )
    copy_weights_by_name(float_model, model)
    return model


def build_qat_model(
    float_model: keras.Model,
    *,
    width: float,
    num_classes: int,
    image_size: int,
    dropout_rate: float = 0.2,
    version: str = "v1",
) -> tf_keras.Model:
    """The quantization-aware (fake-quantized, tf_keras) version of a float GhostNet.

    Builds the same GhostNet with tf_keras (`build_tf_keras_model`), copies `float_model`'s
    weights by layer name, rewrites the layers the default 8-bit scheme cannot turn into int8
    TFLite ops (`quantization_friendly`: the gate scale folded into the SE expand conv, the input
    preprocessing as a frozen 1x1 depthwise conv, the gate clip as a fixed [0, 1] output
    quantizer), then applies `quantize_annotate_model` + `quantize_apply` (default 8-bit scheme)
    in a `quantize_scope` with an output-only `OutputQuantizeConfig` for `Multiply` and the
    capped ReLUs, and no quantizer for GhostNetV2/V3's `NearestResize` (it copies values, so
    its output keeps the sigmoid gate's range). Layer names get tfmot's `quant_` prefix.

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
        version: `"v1"`, `"v2"` or `"v3"` (a V3 is fine-tuned in its deploy form).

    Returns:
        The QAT `tf_keras.Model` (not compiled).
    """
    tf_keras, tfmot = qat_modules()
    from ghostnet_keras.layers.nearest_resize import tf_keras_nearest_resize

    quantize = tfmot.quantization.keras
    config_class = _quantize_config_class()
    nearest_resize = tf_keras_nearest_resize()
    model = build_tf_keras_model(
        float_model, width=width, num_classes=num_classes, image_size=image_size,
        dropout_rate=dropout_rate, version=version,
    )
    model, caps = quantization_friendly(model, cap_relu_by_quantizer=True)

    def annotate(layer: Any) -> Any:
        if isinstance(layer, tf_keras.layers.Multiply):
            return quantize.quantize_annotate_layer(layer, config_class())
        if isinstance(layer, nearest_resize):
            return quantize.quantize_annotate_layer(layer, config_class(quantize_output=False))
        if layer.name in caps:
            return quantize.quantize_annotate_layer(layer, config_class(caps[layer.name]))
        return layer

    with quantize_scope():
        annotated = tf_keras.models.clone_model(model, clone_function=annotate)
        annotated = quantize.quantize_annotate_model(annotated)
        return quantize.quantize_apply(annotated)
