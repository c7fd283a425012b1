"""Benchmarks: generated kernels beside hand-written NumPy, PyTorch and NumPy's copy; derivation time.

``derive bench`` (``command.py``) runs them; ``python -m derive.bench.plot bench.json out.png``
draws the plot in the README.  The baselines (``baselines.py``) are hand-written, not generated.
"""
