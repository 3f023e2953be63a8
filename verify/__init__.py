"""Gradient verification and the vanishing-gradient study (built on ``kernels``)."""
