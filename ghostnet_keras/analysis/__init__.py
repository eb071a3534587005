"""Measuring models: the profiler (parameters, MACs, per layer) and its MAC rules."""
