"""Command-line drivers: each module has a ``main(argv)`` that the scripts in ``scripts/`` call."""
