"""Training code for ghostnet_keras: the main job (`main_job`), the trainer, QAT, and the input
pipeline (`input_pipeline`: tensorflow-datasets + tf.data; which dataset: `datasets`)."""

from ghostnet_keras.backends import require_tensorflow

# A TensorFlow program (tf.data, tf.distribute, tfmot): on JAX or torch, fine-tune with
# `model.fit` instead (docs/reference.md, "Fine-tuning on JAX and PyTorch").
require_tensorflow("The trainer, QAT and main job (ghostnet_keras.training)")
