"""Collator for MD2PR distillation: the student's batch, the teacher's pair inputs and the shared token spans.

Each feature is a training record (``query``, ``positives``, ``negatives``; optional ``query_id`` and
passage ``docid``), sampled exactly like :class:`~maeir.data.retrieval_collator.ContrastiveCollator`
(the same random draws for the same seed, so a plain contrastive run and an MD2PR run see the same
groups). The batch holds

- the student's inputs, tokenised with its recipe: ``query_input_ids / query_attention_mask [B, Lq]``,
  ``passage_input_ids / passage_attention_mask [B * G, Lp]`` (groups, positive first),
  ``passage_mask [B * G]`` (False: padding slot);
- the teacher's inputs for the ``N = B * G`` pairs (query ``n // G`` with passage ``n``):
  ``teacher_input_ids / teacher_attention_mask [/ teacher_token_type_ids] [N, Lt]``. With the same
  tokenizer (required by the word level) they are built from the student's own content tokens
  (:mod:`maeir.methods.md2pr.spans`): no re-tokenisation, so the spans match token for token; with
  another tokenizer the texts are tokenised with the ranker's recipe (sentence level only);
- the spans (same tokenizer only), each ``[N]``: ``span_query_student_start`` (position of the first
  query token in the student's query input), ``span_query_teacher_start``, ``span_query_length``
  and the same three for the passage. A pair longer than ``teacher_max_length`` loses passage tokens
  first (on the recipe's passage truncation side); the span lengths then shrink with it;
- ``teacher_scores [B, G]`` when precomputed scores are given: looked up by ``(query_id, docid)``,
  NaN where unknown.

Public API: :class:`MD2PRCollator`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from transformers import PreTrainedTokenizerBase

from ...data.retrieval_collator import ContrastiveCollator
from ...errors import ConfigError
from ...retrieval.configuration_bi_encoder import BiEncoderConfig
from ...retrieval.modeling_cross_encoder import RankerRecipe, tokenize_pairs
from .spans import PairTemplate, content_positions, single_template, strip_prefix

SPAN_KEYS = (
    "span_query_student_start", "span_query_teacher_start", "span_query_length",
    "span_passage_student_start", "span_passage_teacher_start", "span_passage_length",
)  # fmt: skip


def same_vocabulary(a: PreTrainedTokenizerBase, b: PreTrainedTokenizerBase) -> bool:
    """Whether two tokenizers map every token to the same id (and share their special tokens)."""
    return a is b or (a.get_vocab() == b.get_vocab() and a.all_special_ids == b.all_special_ids)


class MD2PRCollator(ContrastiveCollator):
    """Student batch + teacher pair inputs + spans (see the module docstring).

    Args:
        tokenizer / config: the student's.
        teacher_tokenizer: the ranker's tokenizer (None: the student's).
        teacher_recipe: the ranker's recipe (its ``max_length`` bounds the teacher inputs unless
            ``teacher_max_length`` is given).
        teacher_max_length: tokens per teacher input.
        teacher_inputs: build teacher inputs at all (False with precomputed scores only).
        word_level: spans are needed (the tokenizers must then share their vocabulary).
        teacher_scores: ``{query_id: {docid: score}}`` precomputed teacher scores (a TREC run).
        sampling: ``group_size``, ``positive_sampling``, ``negative_sampling``, ``pad_to_multiple_of``,
            ``seed``: as in :class:`ContrastiveCollator`.
    """

    def __init__(
        self,
        tokenizer: PreTrainedTokenizerBase,
        config: BiEncoderConfig,
        teacher_tokenizer: PreTrainedTokenizerBase | None = None,
        teacher_recipe: RankerRecipe | None = None,
        teacher_max_length: int | None = None,
        teacher_inputs: bool = True,
        word_level: bool = False,
        teacher_scores: Mapping[str, Mapping[str, float]] | None = None,
        **sampling: Any,
    ) -> None:
        super().__init__(tokenizer, config, **sampling)
        self.teacher_tokenizer = teacher_tokenizer or tokenizer
        self.teacher_recipe = teacher_recipe or RankerRecipe()
        self.teacher_max_length = teacher_max_length or self.teacher_recipe.max_length
        self.teacher_inputs = teacher_inputs
        self.word_level = word_level
        self.teacher_scores = teacher_scores
        self.same_tokenizer = same_vocabulary(tokenizer, self.teacher_tokenizer)
        if word_level and not self.same_tokenizer:
            raise ConfigError(
                None, None, "word-level distillation needs the teacher and the student to share one tokenizer "
                "(token spans are compared position by position); switch it off with word_level_weight 0",
                field="word_level_weight",
            )  # fmt: skip
        self.template = PairTemplate.from_tokenizer(self.teacher_tokenizer)
        if self.same_tokenizer and self.teacher_max_length <= self.template.num_special:
            raise ConfigError(None, None, f"too small: {self.teacher_max_length}", field="teacher_max_length")
        self.single_template = single_template(tokenizer)
        self.query_prefix_ids = self._prefix_ids(config.query_prefix)
        self.passage_prefix_ids = self._prefix_ids(config.passage_prefix)

    def _prefix_ids(self, prefix: str) -> list[int]:
        return list(self.tokenizer(prefix, add_special_tokens=False)["input_ids"]) if prefix else []

    # -- the batch ------------------------------------------------------------------------------
    def collate(self, features: Sequence[Mapping[str, Any]]) -> dict[str, torch.Tensor]:
        queries, query_ids, chosen, valid = [], [], [], []
        for feature in features:
            passages, flags = self.select_passages(feature)
            queries.append(str(feature["query"]))
            query_ids.append(str(feature.get("query_id", "")))
            chosen.append(passages)
            valid += flags
        texts = [text for group in chosen for text in self.passage_texts(group)]
        batch = self.student_batch(queries, texts, valid)
        if self.teacher_scores is not None:
            batch["teacher_scores"] = self._lookup_scores(query_ids, chosen)
        if self.teacher_inputs:
            if self.same_tokenizer:
                batch.update(self._teacher_from_student(batch))
            else:
                pair_queries = [q for q in queries for _ in range(self.group_size)]
                pair_passages = ["" if p is None else p for group in chosen for p in group]
                recipe = RankerRecipe(
                    max_length=self.teacher_max_length, include_title=self.teacher_recipe.include_title
                )
                enc = tokenize_pairs(self.teacher_tokenizer, recipe, pair_queries, pair_passages)
                for key in ("input_ids", "attention_mask", "token_type_ids"):
                    if key in enc:
                        batch[f"teacher_{key}"] = enc[key]
        return batch

    def _lookup_scores(self, query_ids: list[str], chosen: list[list[Any]]) -> torch.Tensor:
        rows = []
        for qid, group in zip(query_ids, chosen):
            known = self.teacher_scores.get(qid, {})
            row = []
            for passage in group:
                docid = passage.get("docid") if isinstance(passage, Mapping) else None
                row.append(float(known[docid]) if docid and docid in known else math.nan)
            rows.append(row)
        return torch.tensor(rows, dtype=torch.float32)

    def _teacher_from_student(self, batch: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Teacher inputs assembled from the student's content tokens, and the spans (module docstring)."""
        q_ids, p_ids = batch["query_input_ids"], batch["passage_input_ids"]
        q_positions = content_positions(batch["query_attention_mask"], *self.single_template)
        p_positions = content_positions(batch["passage_attention_mask"], *self.single_template)
        budget = self.teacher_max_length - self.template.num_special
        cut_passage_front = self.config.passage_truncation_side == "left"
        rows, types, spans = [], [], {key: [] for key in SPAN_KEYS}
        queries = [
            self._content(q_ids[i], q_positions[i], self.query_prefix_ids) for i in range(q_ids.shape[0])
        ]
        for n in range(p_ids.shape[0]):
            q_start, q_tokens = queries[n // self.group_size]
            p_start, p_tokens = self._content(p_ids[n], p_positions[n], self.passage_prefix_ids)
            if len(q_tokens) > budget:
                q_tokens = q_tokens[:budget]
            keep = budget - len(q_tokens)
            if len(p_tokens) > keep:
                if cut_passage_front:
                    p_start += len(p_tokens) - keep
                    p_tokens = p_tokens[len(p_tokens) - keep :]
                else:
                    p_tokens = p_tokens[:keep]
            ids, token_types, q_teacher, p_teacher = self.template.build(q_tokens, p_tokens)
            rows.append(ids)
            types.append(token_types)
            for key, value in zip(
                SPAN_KEYS, (q_start, q_teacher, len(q_tokens), p_start, p_teacher, len(p_tokens))
            ):
                spans[key].append(value)
        length = max(len(r) for r in rows)
        if self.pad_to_multiple_of:
            length = -(-length // self.pad_to_multiple_of) * self.pad_to_multiple_of
        pad = self.teacher_tokenizer.pad_token_id or 0
        out = {
            "teacher_input_ids": torch.tensor(
                [r + [pad] * (length - len(r)) for r in rows], dtype=torch.long
            ),
            "teacher_attention_mask": torch.tensor(
                [[1] * len(r) + [0] * (length - len(r)) for r in rows], dtype=torch.long
            ),
        }
        if types[0] is not None and "token_type_ids" in self.teacher_tokenizer.model_input_names:
            out["teacher_token_type_ids"] = torch.tensor(
                [t + [0] * (length - len(t)) for t in types], dtype=torch.long
            )
        out.update({key: torch.tensor(values, dtype=torch.long) for key, values in spans.items()})
        return out

    @staticmethod
    def _content(ids: torch.Tensor, positions: list[int], prefix: list[int]) -> tuple[int, list[int]]:
        """``(position of the first non-prefix content token, those tokens)`` of one student row."""
        tokens = ids[positions].tolist() if positions else []
        k = strip_prefix(tokens, prefix) if prefix else 0
        positions, tokens = positions[k:], tokens[k:]
        if positions and positions[-1] - positions[0] != len(positions) - 1:
            raise ValueError(
                "the student's content tokens are not contiguous: spans cannot be sliced by offsets"
            )
        return (positions[0] if positions else 1), tokens
