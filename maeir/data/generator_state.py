"""A collator's own random generator, whose state a checkpoint saves so that a resumed run draws the same.

Every collator that draws at random (masks, context spans, positives and negatives) inherits
:class:`CheckpointedRandomness`: it draws only from ``self.generator`` (a private ``torch.Generator``,
seeded from ``seed`` or, when the collator is built, from torch's global generator, so ``set_seed``
before building makes runs repeatable) and implements ``collate``; ``__call__`` remembers the
generator state before each of the recent calls. At a checkpoint :class:`maeir.trainers.PretrainingTrainer`
(and every trainer built on it) saves the state from before the first batch that training has not
consumed yet (the data loader collates ahead of training) and restores it on resume, so a resumed run
draws exactly what an uninterrupted one draws (with ``dataloader_num_workers=0``). In ``DataLoader``
worker processes the generator is re-seeded from the worker's seed, so workers never draw alike.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from typing import Any

import torch


class CheckpointedRandomness:
    """Mixin of the collators: ``self.generator`` and the state a checkpoint saves (see the module doc)."""

    HISTORY = 64

    def init_generator(self, seed: int | None = None) -> None:
        """Create the generator (call from ``__init__``)."""
        if seed is None:
            seed = int(torch.randint(0, 2**62, (1,)).item())
        self._generator = torch.Generator().manual_seed(seed)
        self._worker_seeded: int | None = None
        self._calls = 0
        self._history: deque[tuple[int, torch.Tensor]] = deque(maxlen=self.HISTORY)

    def __call__(self, features: Sequence[Any]) -> dict[str, torch.Tensor]:
        if torch.utils.data.get_worker_info() is None:
            self._history.append((self._calls, self._generator.get_state()))
            self._calls += 1
        return self.collate(features)

    def collate(self, features: Sequence[Any]) -> dict[str, torch.Tensor]:
        """Build one batch (implemented by each collator)."""
        raise NotImplementedError

    @property
    def generator(self) -> torch.Generator:
        """The collator's generator (re-seeded once per ``DataLoader`` worker process)."""
        worker = torch.utils.data.get_worker_info()
        if worker is not None and self._worker_seeded != worker.id:
            self._generator.manual_seed(worker.seed)
            self._worker_seeded = worker.id
        return self._generator

    def rng_state_before_call(self, call_index: int) -> torch.Tensor | None:
        """The generator state just before call number ``call_index`` (0-based), if still remembered."""
        if call_index == self._calls:
            return self._generator.get_state()
        for index, state in self._history:
            if index == call_index:
                return state
        return None

    def restore_rng_state(self, state: torch.Tensor, call_index: int) -> None:
        """Continue as if ``call_index`` calls had been made, from ``state``."""
        self._generator.set_state(state)
        self._calls = call_index
        self._history.clear()
