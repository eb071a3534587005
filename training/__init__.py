"""Training code for ghostnet_keras: input pipelines (tensorflow-datasets + tf.data) and trainer."""

from ghostnet_keras.backends import require_tensorflow

# A TensorFlow program (tf.data, tf.distribute, tfmot): on JAX or torch, fine-tune with
# `model.fit` instead (README, "Fine-tuning on JAX and PyTorch").
require_tensorflow("The trainer, QAT and pipeline (ghostnet_keras.training)")
