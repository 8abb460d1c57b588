"""MD2PR (docs/methods.md#md2pr; arXiv 2312.16821): a cross-encoder ranker distilled into a dense dual encoder.

- :mod:`.configuration_md2pr`: :class:`MD2PRConfig`, every hyperparameter (documented defaults);
- :mod:`.false_negatives`: dynamic false-negative filtering and its threshold schedule;
- :mod:`.spans`: teacher inputs from the student's tokens, and the query / passage spans;
- :mod:`.teacher`: :class:`CrossEncoderTeacher`, the frozen ranker with one layer's attention / states;
- :mod:`.objective`: :func:`md2pr_objective`, the loss of one batch;
- :mod:`.collator`: :class:`MD2PRCollator`, student batches plus the teacher's inputs;
- :mod:`.modeling_md2pr`: :class:`MD2PRStudentModel`, the dual-encoder student;
- :mod:`.arguments`: the scripts' argument dataclasses.

The ranker itself is :mod:`maeir.retrieval.modeling_cross_encoder` (+ :class:`maeir.trainers.RankerTrainer`), the
trainer :class:`maeir.trainers.MD2PRTrainer`, the losses one per file under :mod:`maeir.losses`, the
model cards :mod:`maeir.cards`.
"""

from .collator import MD2PRCollator
from .configuration_md2pr import MD2PRConfig
from .false_negatives import ThresholdSchedule, false_negative_mask
from .modeling_md2pr import MD2PRStudentModel, MD2PRStudentOutput
from .objective import md2pr_objective
from .teacher import CrossEncoderTeacher, TeacherOutput

__all__ = [
    "CrossEncoderTeacher",
    "MD2PRCollator",
    "MD2PRConfig",
    "MD2PRStudentModel",
    "MD2PRStudentOutput",
    "TeacherOutput",
    "ThresholdSchedule",
    "false_negative_mask",
    "md2pr_objective",
]
