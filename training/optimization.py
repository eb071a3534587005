"""Learning-rate schedules, the optimizer and the weight-decay set of a recipe."""

from __future__ import annotations

import keras

from ghostnet_keras.training.configs import TrainConfig

# Layers whose kernels are decayed; everything else (BN gamma/beta, biases) is not.
DECAYED_LAYER_TYPES = (
    keras.layers.Conv1D, keras.layers.Conv2D, keras.layers.Conv3D,
    keras.layers.DepthwiseConv2D, keras.layers.SeparableConv2D, keras.layers.Dense,
)


def learning_rate_schedule(
    config: TrainConfig, steps_per_epoch: int
) -> keras.optimizers.schedules.LearningRateSchedule:
    """Linear warm-up then cosine decay to 0, or step decay at epoch boundaries.

    Uses Keras' own schedules (`CosineDecay` with `warmup_steps`, `PiecewiseConstantDecay`).
    """
    peak = config.learning_rate
    total_steps = max(1, config.epochs * steps_per_epoch)
    if config.schedule == "cosine":
        warmup = int(config.warmup_epochs * steps_per_epoch)
        if warmup >= total_steps:
            raise ValueError("warmup_epochs must be shorter than the run.")
        return keras.optimizers.schedules.CosineDecay(
            initial_learning_rate=0.0 if warmup else peak,
            decay_steps=total_steps - warmup,
            warmup_target=peak if warmup else None,
            warmup_steps=warmup,
        )
    if config.schedule == "step":
        boundaries = [int(epoch * steps_per_epoch) for epoch in config.step_boundaries_epochs]
        values = [peak * config.step_decay**i for i in range(len(boundaries) + 1)]
        return keras.optimizers.schedules.PiecewiseConstantDecay(boundaries, values)
    raise ValueError(f"Unknown schedule {config.schedule!r}; use 'cosine' or 'step'.")


def make_optimizer(config: TrainConfig, steps_per_epoch: int) -> keras.optimizers.Optimizer:
    """SGD with (Nesterov) momentum on the recipe's schedule, with optional weight EMA.

    Weight decay is not the optimizer's decoupled decay: it is the recipe's L2 term, added to
    the gradients of `decayed_variables` by the training step (as the reference code does).
    """
    return keras.optimizers.SGD(
        learning_rate=learning_rate_schedule(config, steps_per_epoch),
        momentum=config.momentum,
        nesterov=config.nesterov,
        use_ema=config.ema_decay > 0,
        ema_momentum=config.ema_decay or 0.99,
    )


def decayed_variables(model: keras.Model) -> list:
    """The conv/dense kernels of `model`: the variables weight decay applies to."""
    variables = []
    for layer in model.layers:
        if isinstance(layer, DECAYED_LAYER_TYPES) and layer.trainable:
            if isinstance(layer, keras.layers.DepthwiseConv2D):
                variables.append(layer.kernel)
            elif isinstance(layer, keras.layers.SeparableConv2D):
                variables.extend([layer.depthwise_kernel, layer.pointwise_kernel])
            else:
                variables.append(layer.kernel)
    return variables
