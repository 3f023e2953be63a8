"""Runs, sweeps, statistics and reports over the kernels, and the ``backprop-bench`` command."""
