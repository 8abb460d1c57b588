"""MD2PR (docs/methods.md#md2pr; arXiv 2312.16821): a cross-encoder ranker distilled into a dense dual encoder.

- :mod:`.config`: :class:`MD2PRConfig`, every hyperparameter (documented defaults);
- :mod:`.false_negatives`: dynamic false-negative filtering and its threshold schedule;
- :mod:`.spans`: teacher inputs from the student's tokens, and the query / passage spans;
- :mod:`.teacher`: :class:`CrossEncoderTeacher`, the frozen ranker with one layer's attention / states;
- :mod:`.objective`: :func:`md2pr_objective`, the loss of one batch;
- :mod:`.arguments`: the scripts' argument dataclasses; :mod:`.card`: model cards.

The ranker itself is :mod:`maeir.retrieval.modeling_cross_encoder` (+ :class:`maeir.trainers.RankerTrainer`), the
student :class:`maeir.modeling.modeling_md2pr.MD2PRStudentModel`, the trainer
:class:`maeir.trainers.MD2PRTrainer`, the losses one per file under :mod:`maeir.losses`.
"""

from .config import MD2PRConfig
from .false_negatives import ThresholdSchedule, false_negative_mask
from .objective import md2pr_objective
from .teacher import CrossEncoderTeacher, TeacherOutput

__all__ = [
    "CrossEncoderTeacher",
    "MD2PRConfig",
    "TeacherOutput",
    "ThresholdSchedule",
    "false_negative_mask",
    "md2pr_objective",
]
