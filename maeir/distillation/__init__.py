"""Model cards of the MD2PR and ranker runs (:mod:`.card`).

The MD2PR method itself (config, teacher, objective, collator, student) is :mod:`maeir.methods.md2pr`.
"""
