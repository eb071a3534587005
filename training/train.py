"""Trains GhostNet (or a Ghost CIFAR/ResNet model) on tf.distribute.

    python -m ghostnet_keras.training.train --model_dir=runs/quickstart                 # default
    recipe
    python -m ghostnet_keras.training.train --recipe=imagenet --model_dir=gs://.../ghostnet_100 \
        --manual_dir=/data/imagenet --strategy=mirrored --mixed_precision=mixed_float16
    python -m ghostnet_keras.training.train --recipe=cifar10
    --params_override=model=ghost_vgg16,ratio=3 \
        --model_dir=runs/ghost_vgg16_s3 --download
    TF_CONFIG='{"cluster": {"worker": ["h1:2222", "h2:2222"]}, "task": {"type": "worker",
        "index": 0}}' python -m ghostnet_keras.training.train --strategy=multi_worker
        --model_dir=...

Rerunning the same command resumes from the latest checkpoint in `--model_dir`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from absl import app, flags, logging

from ghostnet_keras.cli import runner as cli
from ghostnet_keras.training.configs import RECIPES
from ghostnet_keras.training.onednn import prefer_onednn
from ghostnet_keras.training.strategy import STRATEGIES

FLAGS = flags.FLAGS


def define_flags() -> None:
    """Defines the command-line flags (only when run as a program, so that importing
    this module never clashes with another module's flags)."""
    flags.DEFINE_enum("recipe", "quickstart", sorted(RECIPES), "Training recipe (a config).")
    flags.DEFINE_string("params_override", "",
                        "Comma-separated field=value overrides of the recipe's config, e.g. "
                        "'epochs=10,global_batch_size=256,width=1.3'.")
    flags.DEFINE_string("model_dir", None,
                        "Run directory: checkpoints, logs, history, final model.")
    flags.DEFINE_enum("strategy", "auto", STRATEGIES, "tf.distribute strategy.")
    flags.DEFINE_string("tpu", "", "TPU name or grpc:// address for --strategy=tpu.")
    flags.DEFINE_integer("cpu_devices", 0,
                         "Split the CPU into this many logical devices (mirrored training on CPU).",
                         lower_bound=0)
    flags.DEFINE_enum("mixed_precision", "float32", ["float32", "mixed_float16", "mixed_bfloat16"],
                      "Keras dtype policy.")
    flags.DEFINE_boolean("jit_compile", False, "Compile the training step with XLA.")
    flags.DEFINE_boolean("deterministic", False,
                         "Deterministic input pipeline and TF ops (slower; for reproducible runs).")
    flags.DEFINE_string("data_dir", None,
                        "tensorflow-datasets data dir (default ~/tensorflow_datasets).")
    flags.DEFINE_string("manual_dir", None,
                        "Folder with ILSVRC2012_img_{train,val}.tar (imagenet).")
    flags.DEFINE_string("folder", None,
                        "Image folder root (<split>/<class>/*.jpg) for image_folder.")
    flags.DEFINE_boolean("download", False, "Let tensorflow-datasets download the dataset.")
    flags.DEFINE_integer("max_steps", 0,
                         "Stop after this many steps in this process (0: no limit).",
                         lower_bound=0)
    flags.DEFINE_boolean("qat", False,
                         "Quantization-aware fine-tuning (tfmot, tf_keras) of --init_from's model; "
                         "qat_epochs epochs (a recipe field: --params_override=qat_epochs=N) at "
                         "1/100 of the recipe's learning rate.")
    flags.DEFINE_string("init_from", None, "Trained float model (.keras) to start --qat from.")
    flags.mark_flag_as_required("model_dir")


# Flags the float training loop reads and the QAT fine-tuning (tf_keras `fit`) does not.
FLOAT_ONLY_FLAGS = ("mixed_precision", "jit_compile", "max_steps")


def check_flags(values: Any) -> None:
    """Refuses flags that would be ignored in the chosen mode (before TensorFlow loads)."""
    if values.qat:
        ignored = [f"--{name}" for name in FLOAT_ONLY_FLAGS if values[name].present]
        if ignored:
            raise app.UsageError(
                f"{', '.join(ignored)} would be ignored with --qat: the QAT fine-tuning is "
                "tf_keras `fit` with its own settings (length: --params_override=qat_epochs=N).")
        if not values.init_from:
            raise app.UsageError("--qat needs --init_from=<trained float model .keras>.")
        if not Path(values.init_from).is_file():
            raise FileNotFoundError(f"No such model file: {values.init_from} (--init_from)")
    elif values.init_from:
        raise app.UsageError("--init_from would be ignored: it is the model --qat starts from.")
    if values.tpu and values.strategy != "tpu":
        raise app.UsageError(f"--tpu would be ignored with --strategy={values.strategy}.")


def main(argv: Sequence[str]) -> None:
    del argv
    check_flags(FLAGS)
    import keras
    import tensorflow as tf

    from ghostnet_keras.training.configs import get_config
    from ghostnet_keras.training.loop import DataSource, Trainer
    from ghostnet_keras.training.strategy import make_strategy

    if not FLAGS["verbosity"].present:  # tensorflow-datasets logs every split it opens
        logging.set_verbosity(logging.WARNING)
    config = get_config(FLAGS.recipe, FLAGS.params_override)
    if FLAGS.deterministic:
        tf.config.experimental.enable_op_determinism()
        keras.utils.set_random_seed(config.seed)
    try:
        strategy = make_strategy(FLAGS.strategy, tpu=FLAGS.tpu, cpu_devices=FLAGS.cpu_devices)
    except RuntimeError as error:  # no TPU reachable
        raise cli.UserError(str(error)) from error
    source = DataSource(FLAGS.data_dir, FLAGS.manual_dir, FLAGS.folder, FLAGS.download)
    if FLAGS.qat:
        from ghostnet_keras.training.qat import train_qat

        history = train_qat(config, strategy, FLAGS.model_dir, source, FLAGS.init_from,
                            epochs=config.qat_epochs)
        if history:
            print(f"final (QAT): val_accuracy {history[-1].get('val_accuracy', float('nan')):.4f}",
                  flush=True)
        return
    keras.mixed_precision.set_global_policy(FLAGS.mixed_precision)
    trainer = Trainer(
        config, strategy, FLAGS.model_dir,
        source=source,
        jit_compile=FLAGS.jit_compile, deterministic=FLAGS.deterministic,
        max_steps=FLAGS.max_steps or None,
    )
    print(f"recipe {config.recipe}: {config.model} on {config.dataset}, "
          f"{strategy.num_replicas_in_sync} replica(s), {trainer.steps_per_epoch} steps/epoch, "
          f"{config.epochs} epochs, global batch {config.global_batch_size}", flush=True)
    history = trainer.train()
    if history:
        last = history[-1]
        print(f"final: val_accuracy {last['val_accuracy']:.4f} "
              f"val_top5_accuracy {last['val_top5_accuracy']:.4f}", flush=True)


def main_entry() -> None:
    """Console-script entry point (`ghostnet-train`)."""
    prefer_onednn()
    cli.run(main, define_flags)


if __name__ == "__main__":
    main_entry()
