"""Building blocks and the custom layers a saved model may hold (registered with Keras)."""
