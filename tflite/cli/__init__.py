"""The TFLite console scripts' thin modules (`ghostnet-tflite-convert`, `-inventory`)."""
