"""Demo data sets, kept apart from the library: :mod:`maeir.datasets.embedded` builds the embedded data.

The library's readers (:mod:`maeir.data`) take any user file; they call the embedded builders only when
a config asks for the embedded default data.
"""
