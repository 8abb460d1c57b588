"""GLUE-style classification and regression metrics as an ``evaluate`` module that loads by path.

A drop-in, offline replacement for the Hub's ``glue`` metric (same config names, same keys), plus
two generic configs:

- ``cola``: ``matthews_correlation``
- ``sst2``, ``rte``, ``qnli``, ``wnli``, ``mnli``, ``mnli_matched``, ``mnli_mismatched``, ``hans``,
  ``ax``: ``accuracy``
- ``mrpc``, ``qqp``: ``accuracy`` and ``f1`` (binary, positive class 1)
- ``stsb``: ``pearson`` and ``spearmanr``
- ``classification``: ``accuracy``, ``f1`` (macro) and ``matthews_correlation``
- ``regression``: ``pearson`` and ``spearmanr``

Correlations of a constant input are undefined and come back as ``nan`` (scipy's convention).
"""

from __future__ import annotations

import warnings

import datasets
import evaluate
import numpy as np
from scipy.stats import pearsonr, spearmanr
from sklearn.metrics import f1_score, matthews_corrcoef

_CITATION = """\
@inproceedings{wang2019glue,
  title={{GLUE}: A Multi-Task Benchmark and Analysis Platform for Natural Language Understanding},
  author={Wang, Alex and Singh, Amanpreet and Michael, Julian and Hill, Felix and Levy, Omer and Bowman, Samuel R.},
  booktitle={International Conference on Learning Representations},
  year={2019}
}
"""

_DESCRIPTION = """\
GLUE metrics (accuracy, F1, Matthews correlation, Pearson and Spearman correlation) computed with
scikit-learn and scipy, plus generic ``classification`` and ``regression`` configs.
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions: predicted labels (class ids; floats for ``stsb`` and ``regression``).
    references: gold labels, same type and length as ``predictions``.
Returns: a dict with the config's keys (see the module docstring), each a Python float.
Examples:
    >>> metric = evaluate.load("maeir/metrics/glue", "mrpc")
    >>> metric.compute(predictions=[0, 1, 1], references=[0, 1, 0])
    {'accuracy': 0.6666666666666666, 'f1': 0.6666666666666666}
"""

ACCURACY_CONFIGS = ("sst2", "rte", "qnli", "wnli", "mnli", "mnli_matched", "mnli_mismatched", "hans", "ax")
F1_CONFIGS = ("mrpc", "qqp")
REGRESSION_CONFIGS = ("stsb", "regression")
CONFIGS = ("cola", *ACCURACY_CONFIGS, *F1_CONFIGS, "stsb", "classification", "regression")


def simple_accuracy(preds: np.ndarray, labels: np.ndarray) -> float:
    return float((preds == labels).mean()) if len(labels) else float("nan")


def acc_and_f1(preds: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    return {
        "accuracy": simple_accuracy(preds, labels),
        "f1": float(f1_score(y_true=labels, y_pred=preds, zero_division=0.0)),
    }


def pearson_and_spearman(preds: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    with warnings.catch_warnings():
        # a constant input (an untrained model) gives nan with a warning; nan is the answer
        warnings.simplefilter("ignore")
        return {
            "pearson": float(pearsonr(preds, labels)[0]),
            "spearmanr": float(spearmanr(preds, labels)[0]),
        }


def classification_scores(preds: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    return {
        "accuracy": simple_accuracy(preds, labels),
        "f1": float(f1_score(y_true=labels, y_pred=preds, average="macro", zero_division=0.0)),
        "matthews_correlation": float(matthews_corrcoef(labels, preds)),
    }


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class Glue(evaluate.Metric):
    """GLUE metrics, selected by ``config_name``."""

    def _info(self) -> evaluate.MetricInfo:
        if self.config_name not in CONFIGS:
            raise KeyError(f"unknown GLUE metric config {self.config_name!r}: choose from {list(CONFIGS)}")
        dtype = "float32" if self.config_name in REGRESSION_CONFIGS else "int64"
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {"predictions": datasets.Value(dtype), "references": datasets.Value(dtype)}
            ),
            codebase_urls=[],
            reference_urls=["https://gluebenchmark.com/"],
            format="numpy",
        )

    def _compute(self, predictions, references) -> dict[str, float]:
        preds, labels = np.asarray(predictions), np.asarray(references)
        name = self.config_name
        if name == "cola":
            return {"matthews_correlation": float(matthews_corrcoef(labels, preds))}
        if name in REGRESSION_CONFIGS:
            return pearson_and_spearman(preds.astype(np.float64), labels.astype(np.float64))
        if name in F1_CONFIGS:
            return acc_and_f1(preds, labels)
        if name == "classification":
            return classification_scores(preds, labels)
        return {"accuracy": simple_accuracy(preds, labels)}
