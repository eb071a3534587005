"""Exports and their shared contract (probabilities or logits, labels): ONNX, TF Serving."""
