"""Transitional alias of :mod:`maeir.cli` for ``maeir.drivers.study`` (being rewritten elsewhere).

The command modules live in :mod:`maeir.cli`; ``maeir.drivers.<name>`` resolves to the same module
object as ``maeir.cli.<name>`` (no second copy), and the helpers of :mod:`maeir.cli` are re-exported.
Only ``study`` is a real module here. Remove this package once the study runner moves to ``maeir.cli``.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys

from ..cli import (  # noqa: F401  (re-exported for maeir.drivers.study)
    RunFolderArguments,
    interrupted_message,
    parse_training_command,
    run_cli,
    setup_logging,
    training_driver,
)


class _CliAlias(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """``maeir.drivers.X`` -> the module ``maeir.cli.X`` (for every X but ``study``)."""

    def find_spec(self, fullname, path, target=None):  # noqa: ANN001, ANN201
        prefix = __name__ + "."
        if not fullname.startswith(prefix) or "." in fullname[len(prefix) :] or fullname.endswith(".study"):
            return None
        if importlib.util.find_spec("maeir.cli." + fullname[len(prefix) :]) is None:
            return None
        return importlib.util.spec_from_loader(fullname, self)

    def create_module(self, spec):  # noqa: ANN001, ANN201
        return importlib.import_module("maeir.cli." + spec.name.rsplit(".", 1)[1])

    def exec_module(self, module):  # noqa: ANN001, ANN201
        return None


if not any(isinstance(finder, _CliAlias) for finder in sys.meta_path):
    sys.meta_path.insert(0, _CliAlias())
