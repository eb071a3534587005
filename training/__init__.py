"""Training code for ghostnet_keras: input pipelines (tensorflow-datasets + tf.data) and trainer."""
