"""Speed benchmarks of maeir (run as ``python benchmarks/bench_x.py`` or ``python -m benchmarks.bench_x``).

:mod:`benchmarks.common` holds the measurement helpers every script shares.
"""
