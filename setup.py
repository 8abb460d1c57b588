"""Shim for tools that still call ``setup.py``; metadata lives in ``setup.cfg``.

The only thing done here: the top-level ``model_cards/`` templates ship inside the wheel as the
``maeir.model_cards`` package data, so installed copies render the same cards as a source checkout;
and the local ``evaluate`` metric module ``maeir/metrics/glue/glue.py`` (a folder without
``__init__.py``, loaded by path) is listed as a package so that it ships too.
"""

from setuptools import find_packages, setup

setup(
    packages=find_packages(include=["maeir", "maeir.*"]) + ["maeir.model_cards", "maeir.metrics.glue"],
    package_dir={"maeir.model_cards": "model_cards"},
    package_data={"maeir.model_cards": ["*.md"]},
)
