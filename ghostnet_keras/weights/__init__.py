"""Weights in and out: PyTorch files read without torch, strict loading, `.keras` files."""
