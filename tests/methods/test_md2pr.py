"""MD2PR (docs/methods.md#md2pr): ranker, losses, spans, false-negative filtering, distillation, re-ranking."""

from __future__ import annotations

import json
import math
import re
from types import SimpleNamespace

import pytest
import torch
from transformers import AutoConfig, AutoModelForMaskedLM, AutoModelForSequenceClassification

from maeir.data.ranker_collator import RankerCollator
from maeir.errors import ConfigError
from maeir.losses import (
    attention_alignment_loss,
    distillation_kl,
    hidden_state_alignment_loss,
    info_nce,
    listwise_cross_entropy,
    student_interaction,
    teacher_attention_target,
    teacher_distribution,
)
from maeir.methods.md2pr import CrossEncoderTeacher, MD2PRConfig, ThresholdSchedule, false_negative_mask
from maeir.methods.md2pr.collator import MD2PRCollator
from maeir.methods.md2pr.objective import md2pr_objective
from maeir.methods.md2pr.spans import PairTemplate
from maeir.modeling.backbone import tiny_config
from maeir.retrieval.configuration_bi_encoder import BiEncoderConfig
from maeir.retrieval.modeling_cross_encoder import RankerRecipe, load_cross_encoder, score_pairs


def _softmax(values: list[float]) -> list[float]:
    top = max(values)
    exps = [math.exp(v - top) for v in values]
    return [e / sum(exps) for e in exps]


# -- losses: hand computations ---------------------------------------------------------------------
def test_listwise_ce_equals_hand_computation():
    scores = torch.tensor([[2.0, 1.0, 0.0], [0.5, 1.5, -1.0]])
    valid = torch.tensor([[True, True, True], [True, True, False]])
    expected = -math.log(_softmax([2.0, 1.0, 0.0])[0]) - math.log(_softmax([0.5, 1.5])[0])
    assert listwise_cross_entropy(scores, valid).item() == pytest.approx(expected / 2, rel=1e-6)
    tau = 0.5
    expected_tau = -math.log(_softmax([4.0, 2.0, 0.0])[0]) - math.log(_softmax([1.0, 3.0, -2.0])[0])
    assert listwise_cross_entropy(scores, temperature=tau).item() == pytest.approx(expected_tau / 2, rel=1e-6)
    with pytest.raises(ValueError):
        listwise_cross_entropy(scores, torch.tensor([[False, True, True], [True, True, True]]))


def test_kl_is_batchmean_with_both_temperatures_and_renormalised_target():
    student = torch.tensor([[1.0, 2.0, 0.0], [0.0, -1.0, 3.0]], requires_grad=True)
    teacher = torch.tensor([[3.0, 1.0, 0.5], [1.0, 2.0, 0.0]])
    ts, tt = 2.0, 0.5
    expected = 0.0
    for s_row, t_row in zip(student.tolist(), teacher.tolist()):
        p_t = _softmax([t / tt for t in t_row])
        p_s = _softmax([s / ts for s in s_row])
        expected += sum(a * (math.log(a) - math.log(b)) for a, b in zip(p_t, p_s))
    loss = distillation_kl(student, teacher, ts, tt)
    assert loss.item() == pytest.approx(expected / 2, rel=1e-6)  # / rows, not / (rows * 3)
    reference = torch.nn.functional.kl_div(
        torch.log_softmax(student / ts, -1), torch.softmax(teacher / tt, -1), reduction="batchmean"
    )
    assert loss.item() == pytest.approx(reference.item(), rel=1e-6)
    # A removed candidate: the target renormalised over the others, the student's softmax too.
    keep = torch.tensor([[True, False, True], [True, True, True]])
    target = teacher_distribution(teacher, tt, keep)
    assert target[0, 1].item() == 0.0
    assert target.sum(-1).tolist() == pytest.approx([1.0, 1.0])
    p_t = _softmax([3.0 / tt, 0.5 / tt])
    p_s = _softmax([1.0 / ts, 0.0 / ts])
    row0 = sum(a * (math.log(a) - math.log(b)) for a, b in zip(p_t, p_s))
    p_t, p_s = (
        _softmax([t / tt for t in teacher[1].tolist()]),
        _softmax([s / ts for s in student[1].tolist()]),
    )
    row1 = sum(a * (math.log(a) - math.log(b)) for a, b in zip(p_t, p_s))
    masked = distillation_kl(student, teacher, ts, tt, keep)
    assert masked.item() == pytest.approx((row0 + row1) / 2, rel=1e-6)
    masked.backward()
    assert student.grad[0, 1].item() == 0.0 and torch.isfinite(student.grad).all()


def _fixed_attention_example():
    """Teacher input [CLS] q1 q2 [SEP] p1 p2 p3 [SEP] (|q| = 2: query at 1..2, passage from 4)."""
    torch.manual_seed(3)
    attention = torch.softmax(torch.randn(1, 2, 8, 8), dim=-1)  # [N, H, L, L]
    query_states = torch.randn(1, 2, 4)  # the student's q1, q2 (width d = 4)
    passage_states = torch.randn(1, 3, 4)  # the student's p1, p2, p3
    return attention, query_states, passage_states


def _hand_attention_loss(attention, query_states, passage_states) -> float:
    total = 0.0
    for qi, row in enumerate((1, 2)):
        heads = [[sum(attention[0, h, row, col].item() for h in range(2)) / 2 for col in (4, 5, 6)]][0]
        target = [a / sum(heads) for a in heads]
        logits = [
            sum(query_states[0, qi, k].item() * passage_states[0, pj, k].item() for k in range(4))
            / math.sqrt(4)
            for pj in range(3)
        ]
        student = _softmax(logits)
        total += sum((s - t) ** 2 for s, t in zip(student, target))
    return total / 6


def test_attention_alignment_equals_hand_computation():
    attention, q, p = _fixed_attention_example()
    q_index, p_index = torch.tensor([[1, 2]]), torch.tensor([[4, 5, 6]])
    valid_q, valid_p = torch.ones(1, 2, dtype=torch.bool), torch.ones(1, 3, dtype=torch.bool)
    target = teacher_attention_target(attention, q_index, p_index, valid_p)
    assert target.sum(-1)[0].tolist() == pytest.approx([1.0, 1.0])
    student = student_interaction(q, p, valid_p)
    loss = attention_alignment_loss(student, target, valid_q, valid_p)
    assert loss.item() == pytest.approx(_hand_attention_loss(attention, q, p), rel=1e-5)
    # A padding passage column takes part in neither softmax nor mean.
    p_pad = torch.cat([p, torch.randn(1, 1, 4)], 1)
    valid_pad = torch.tensor([[True, True, True, False]])
    target_pad = teacher_attention_target(attention, q_index, torch.tensor([[4, 5, 6, 0]]), valid_pad)
    padded = attention_alignment_loss(
        student_interaction(q, p_pad, valid_pad), target_pad, valid_q, valid_pad
    )
    assert padded.item() == pytest.approx(loss.item(), rel=1e-5)


def test_hidden_state_alignment_equals_hand_computation():
    student = torch.tensor([[[1.0, 2.0], [3.0, 4.0], [9.0, 9.0]]])
    teacher = torch.tensor([[[0.0, 2.0], [1.0, 1.0], [0.0, 0.0]]])
    valid = torch.tensor([[True, True, False]])
    expected = ((1 - 0) ** 2 + 0 + (3 - 1) ** 2 + (4 - 1) ** 2) / 4
    assert hidden_state_alignment_loss(student, teacher, valid).item() == pytest.approx(expected)


class _FakeStudent:
    """What md2pr_objective reads from a student: representation, score and config.temperature."""

    config = SimpleNamespace(temperature=0.5)

    @staticmethod
    def representation(output, side):
        return {"dense": getattr(output, f"{side}_dense")}

    @staticmethod
    def score(query, passage):
        return query["dense"] @ passage["dense"].T


def test_word_level_terms_in_the_objective_use_the_spans():
    attention, q, p = _fixed_attention_example()
    # The student's query input is [CLS] q1 q2 [SEP] (query at 1..2), its passage [CLS] p1 p2 p3 [SEP].
    query_tokens = torch.cat([torch.randn(1, 1, 4), q, torch.randn(1, 1, 4)], 1)
    passage_tokens = torch.cat([torch.randn(1, 1, 4), p, torch.randn(1, 1, 4)], 1)
    teacher_hidden = torch.randn(1, 8, 4)
    output = SimpleNamespace(
        query_dense=torch.randn(1, 4), passage_dense=torch.randn(1, 4),
        query_token_states=query_tokens, passage_token_states=passage_tokens,
        query_token_states_projected=query_tokens, passage_token_states_projected=passage_tokens,
    )  # fmt: skip
    batch = {
        "passage_mask": torch.tensor([True]),
        "span_query_student_start": torch.tensor([1]), "span_query_teacher_start": torch.tensor([1]),
        "span_query_length": torch.tensor([2]),
        "span_passage_student_start": torch.tensor([1]), "span_passage_teacher_start": torch.tensor([4]),
        "span_passage_length": torch.tensor([3]),
    }  # fmt: skip
    config = MD2PRConfig(contrastive_weight=0, kl_weight=0, false_negative_filtering=False, word_level_weight=0.5,
                         attention_weight=2.0, hidden_weight=3.0)  # fmt: skip
    teacher = SimpleNamespace(attention=attention.mean(1), hidden=teacher_hidden)
    loss, report, parts = md2pr_objective(_FakeStudent(), output, batch, config, teacher=teacher)
    attention_expected = _hand_attention_loss(attention, q, p)
    query_mse = (q - teacher_hidden[:, 1:3]).pow(2).mean().item()
    passage_mse = (p - teacher_hidden[:, 4:7]).pow(2).mean().item()
    assert parts["attention_loss"].item() == pytest.approx(attention_expected, rel=1e-5)
    assert parts["hidden_loss"].item() == pytest.approx((query_mse + passage_mse) / 2, rel=1e-5)
    assert report.item() == pytest.approx(
        0.5 * (2.0 * attention_expected + 3.0 * (query_mse + passage_mse) / 2), rel=1e-5
    )
    assert set(parts) == {"attention_loss", "hidden_loss", "word_level_loss"}


# -- spans -----------------------------------------------------------------------------------------
def _records(n: int = 3):
    return [
        {"query_id": f"q{i}", "query": f"what does the {w} say about rain", "positives": [
            {"docid": f"p{i}", "title": "", "text": f"the {w} reports heavy rain over the hills today"}],
         "negatives": [{"docid": f"n{i}{k}", "title": "", "text": f"an unrelated note number {k} on {w} prices"}
                       for k in range(3)]}
        for i, w in enumerate(["forecast", "bureau", "station", "radio"][:n])
    ]  # fmt: skip


def test_spans_slice_exactly_the_query_and_passage_tokens(tokenizer):
    config = BiEncoderConfig(query_max_length=32, passage_max_length=64)
    collator = MD2PRCollator(
        tokenizer, config, group_size=3, negative_sampling="first", seed=0, word_level=True
    )
    records = _records()
    # [UNK] pieces and a literal "[SEP]" inside the texts are content, not template tokens.
    records[1]["query"] = "what does the ☃ bureau say [SEP] about rain"
    records[2]["positives"][0]["text"] = "ᚠᚢᚦ the station 🦜 reports heavy rain"
    batch = collator(records)
    for n in range(batch["passage_input_ids"].shape[0]):
        i = n // 3
        length = int(batch["teacher_attention_mask"][n].sum())
        teacher_ids = batch["teacher_input_ids"][n, :length].tolist()
        query_text = records[i]["query"]
        group = [records[i]["positives"][0], *records[i]["negatives"][:2]]  # "first" sampling
        reference = tokenizer(query_text, group[n % 3]["text"])
        assert teacher_ids == reference["input_ids"]  # exactly the tokenizer's own pair encoding
        assert batch["teacher_token_type_ids"][n, :length].tolist() == reference["token_type_ids"]
        qs, qt, ql = (
            int(batch[k][n])
            for k in ("span_query_student_start", "span_query_teacher_start", "span_query_length")
        )
        ps, pt, pl = (
            int(batch[k][n])
            for k in ("span_passage_student_start", "span_passage_teacher_start", "span_passage_length")
        )
        query_ids = tokenizer(query_text, add_special_tokens=False)["input_ids"]
        assert (qt, ql) == (1, len(query_ids)) and pt == ql + 2  # [CLS] q [SEP] p [SEP]
        assert teacher_ids[qt : qt + ql] == query_ids == batch["query_input_ids"][i, qs : qs + ql].tolist()
        assert teacher_ids[pt : pt + pl] == batch["passage_input_ids"][n, ps : ps + pl].tolist()
        assert (
            teacher_ids[qt - 1] == tokenizer.cls_token_id and teacher_ids[qt + ql] == tokenizer.sep_token_id
        )
        assert teacher_ids[pt + pl] == tokenizer.sep_token_id and pt + pl + 1 == length


def test_spans_skip_prefixes_and_shrink_with_teacher_truncation(tokenizer):
    config = BiEncoderConfig(
        query_max_length=32, passage_max_length=64, query_prefix="query: ", passage_prefix="passage: "
    )
    collator = MD2PRCollator(tokenizer, config, group_size=2, negative_sampling="first", seed=0, word_level=True,
                             teacher_max_length=16)  # fmt: skip
    batch = collator(_records(2))
    prefix = tokenizer("query: ", add_special_tokens=False)["input_ids"]
    for n in range(4):
        i = n // 2
        query_ids = tokenizer(_records(2)[i]["query"], add_special_tokens=False)["input_ids"]
        qs, ql = int(batch["span_query_student_start"][n]), int(batch["span_query_length"][n])
        assert batch["query_input_ids"][i, 1 : 1 + len(prefix)].tolist() == prefix and qs == 1 + len(prefix)
        assert batch["query_input_ids"][i, qs : qs + ql].tolist() == query_ids
        assert int(batch["teacher_attention_mask"][n].sum()) == 16  # cut to the teacher's length
        pt, pl, ps = (
            int(batch[k][n])
            for k in ("span_passage_teacher_start", "span_passage_length", "span_passage_student_start")
        )
        assert pl == 16 - 3 - len(query_ids)  # the passage lost its tail
        assert (
            batch["teacher_input_ids"][n, pt : pt + pl].tolist()
            == batch["passage_input_ids"][n, ps : ps + pl].tolist()
        )
        assert prefix[0] not in batch["teacher_input_ids"][n].tolist()


def test_pair_template_is_read_from_the_tokenizer(tokenizer):
    template = PairTemplate.from_tokenizer(tokenizer)
    ids, types, a, b = template.build([7, 8], [9])
    assert ids == [tokenizer.cls_token_id, 7, 8, tokenizer.sep_token_id, 9, tokenizer.sep_token_id]
    assert types == [0, 0, 0, 0, 1, 1] and (a, b) == (1, 4)


# -- false-negative filtering ------------------------------------------------------------------------
def test_false_negative_masked_in_ce_and_kl_and_target_sums_to_one():
    torch.manual_seed(0)
    q, p = torch.randn(2, 4), torch.randn(6, 4)  # 2 queries, groups of 3
    output = SimpleNamespace(query_dense=q, passage_dense=p)
    teacher = torch.tensor([[1.0, 2.5, 0.0], [2.0, 1.0, 2.2]])  # query 0's passage 1 is a false negative
    config = MD2PRConfig(word_level_weight=0, kl_teacher_temperature=2.0, kl_student_temperature=1.0)
    loss, report, parts = md2pr_objective(_FakeStudent(), output, {"passage_mask": torch.ones(6, dtype=torch.bool)},
                                          config, teacher_scores=teacher, threshold=1.0)  # fmt: skip
    assert false_negative_mask(teacher, 1.0).tolist() == [[False, True, False], [False, False, False]]
    assert parts["false_negatives"].item() == 1 and parts["false_negative_rate"].item() == pytest.approx(0.25)
    scores = (q @ p.T).clone()
    scores[0, 1] = float("-inf")
    assert parts["contrastive_loss"].item() == pytest.approx(info_nce(scores, 0.5).item(), rel=1e-6)
    # Hand computation of query 0's CE row: passage 1 is absent from its softmax.
    row = [(q[0] @ p[j]).item() / 0.5 for j in (0, 2, 3, 4, 5)]
    ce0 = -math.log(_softmax(row)[0])
    row1 = [(q[1] @ p[j]).item() / 0.5 for j in range(6)]
    ce1 = -math.log(_softmax(row1)[3])
    assert parts["contrastive_loss"].item() == pytest.approx((ce0 + ce1) / 2, rel=1e-5)
    keep = torch.tensor([[True, False, True], [True, True, True]])
    target = teacher_distribution(teacher, 2.0, keep)
    assert target[0, 1] == 0 and target.sum(-1).tolist() == pytest.approx([1.0, 1.0])
    groups = torch.stack([q[0] @ p[0:3].T, q[1] @ p[3:6].T])
    assert parts["kl_loss"].item() == pytest.approx(
        distillation_kl(groups, teacher, 1.0, 2.0, keep).item(), rel=1e-6
    )
    p0 = _softmax([1.0 / 2, 0.0 / 2])
    s0 = _softmax([groups[0, 0].item(), groups[0, 2].item()])
    p1, s1 = _softmax([t / 2 for t in teacher[1].tolist()]), _softmax(groups[1].tolist())
    hand = sum(a * math.log(a / b) for a, b in zip(p0, s0)) + sum(a * math.log(a / b) for a, b in zip(p1, s1))
    assert parts["kl_loss"].item() == pytest.approx(hand / 2, rel=1e-5)
    # No filtering (threshold +inf): the same negative is back in both terms.
    _, _, unfiltered = md2pr_objective(_FakeStudent(), output, {}, config, teacher_scores=teacher)
    assert "false_negatives" not in unfiltered
    assert unfiltered["contrastive_loss"].item() == pytest.approx(info_nce(q @ p.T, 0.5).item(), rel=1e-6)


def test_threshold_schedules_move_as_configured():
    linear = ThresholdSchedule("linear", start=2.0, end=0.0, begin_step=10, num_steps=20)
    assert linear.value(0) == math.inf and linear.value(9) == math.inf
    assert [linear.value(s) for s in (10, 20, 30, 50)] == pytest.approx([2.0, 1.0, 0.0, 0.0])
    cosine = ThresholdSchedule("cosine", start=1.0, end=3.0, num_steps=10)
    assert [cosine.value(s) for s in (0, 5, 10)] == pytest.approx([1.0, 2.0, 3.0])
    assert cosine.value(2) < 1.0 + 2.0 * 0.2  # slow start
    step = ThresholdSchedule("step", start=3.0, end=0.0, num_steps=30, num_stages=4)
    assert [step.value(s) for s in (0, 9, 10, 19, 20, 29, 30)] == pytest.approx([3, 3, 2, 2, 1, 1, 0])
    assert ThresholdSchedule("constant", start=0.7).value(1000) == 0.7
    assert MD2PRConfig(fn_begin_step=5).threshold_schedule(max_steps=25).num_steps == 20
    with pytest.raises(ConfigError):
        MD2PRConfig(fn_schedule="exponential")
    with pytest.raises(ConfigError):
        MD2PRConfig(teacher_scores="precomputed")  # word level on: needs the teacher on the fly


# -- teacher -----------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny_ranker_dir(tmp_path_factory, tiny_backbone_dir):
    model, tokenizer, _ = load_cross_encoder(tiny_backbone_dir, max_length=64)
    folder = tmp_path_factory.mktemp("tiny_ranker")
    from maeir.retrieval.modeling_cross_encoder import save_cross_encoder

    save_cross_encoder(model, tokenizer, folder)
    return str(folder)


@pytest.mark.parametrize("layer", [-1, 0])
def test_teacher_records_one_layer_like_eager_attention(tiny_ranker_dir, tokenizer, layer):
    model, _, recipe = load_cross_encoder(tiny_ranker_dir)
    eager = AutoModelForSequenceClassification.from_pretrained(
        tiny_ranker_dir, attn_implementation="eager"
    ).eval()
    teacher = CrossEncoderTeacher(model, tokenizer, recipe, layer=layer, record_attention=True, record_hidden=True,
                                  batch_size=2)  # fmt: skip
    enc = tokenizer(["rain today", "a much longer query about the weather"], ["heavy rain", "sunny"], padding=True,
                    return_tensors="pt")  # fmt: skip
    enc = {k: torch.cat([v, v.flip(0)]) for k, v in enc.items()}  # 4 pairs, chunks of 2, padding in each
    out = teacher(enc["input_ids"], enc["attention_mask"], enc["token_type_ids"])
    with torch.no_grad():
        reference = eager(**enc, output_attentions=True, output_hidden_states=True)
    assert torch.allclose(out.scores, reference.logits.view(-1), atol=1e-5)
    assert torch.allclose(out.attention, reference.attentions[layer].mean(1), atol=1e-5)
    assert torch.allclose(out.hidden, reference.hidden_states[layer % 2 + 1], atol=1e-5)


# -- trainers --------------------------------------------------------------------------------------
def _student(tiny_backbone_dir):
    from maeir.methods.md2pr.modeling_md2pr import MD2PRStudentModel
    from maeir.modeling import BiEncoderModel

    torch.manual_seed(0)
    return MD2PRStudentModel.from_bi_encoder(BiEncoderModel.from_backbone(tiny_backbone_dir, temperature=0.5))


def _training_args(tmp_path, steps: int = 3):
    from maeir.retrieval.arguments import RetrieverTrainingArguments

    return RetrieverTrainingArguments(
        output_dir=str(tmp_path / "run"), max_steps=steps, per_device_train_batch_size=2, learning_rate=1e-3,
        logging_steps=1, save_strategy="no", report_to="none", use_cpu=True, disable_tqdm=True,
        dataloader_num_workers=0, seed=0,
    )  # fmt: skip


def test_teacher_never_changes_and_gradients_reach_the_student_only(
    tiny_backbone_dir, tiny_ranker_dir, tokenizer, tmp_path
):
    from datasets import Dataset

    from maeir.trainers import MD2PRTrainer

    student = _student(tiny_backbone_dir)
    model, teacher_tokenizer, recipe = load_cross_encoder(tiny_ranker_dir)
    model.train()  # the teacher wrapper must put it in eval mode itself
    teacher = CrossEncoderTeacher(model, teacher_tokenizer, recipe, record_attention=True, record_hidden=True)
    config = MD2PRConfig(fn_threshold_start=0.5, fn_threshold_end=-0.5)
    collator = MD2PRCollator(tokenizer, student.config, group_size=3, seed=0, word_level=True)
    trainer = MD2PRTrainer(
        model=student, args=_training_args(tmp_path), train_dataset=Dataset.from_list(_records(4)),
        data_collator=collator, processing_class=tokenizer, md2pr=config, teacher=teacher,
    )  # fmt: skip
    assert not model.training and not any(p.requires_grad for p in model.parameters())
    teacher_before = {k: v.clone() for k, v in model.state_dict().items()}
    student_before = {k: v.clone() for k, v in student.state_dict().items()}

    batch = collator(_records(2))
    loss = trainer.compute_loss(student, batch)
    loss.backward()
    assert all(p.grad is None for p in model.parameters())
    grads = {n: p.grad for n, p in student.named_parameters() if "pooler" not in n}
    assert all(g is not None and torch.isfinite(g).all() for g in grads.values())
    assert grads["query_encoder.embeddings.word_embeddings.weight"].abs().sum() > 0
    student.zero_grad()

    trainer.train()
    assert all(torch.equal(teacher_before[k], v) for k, v in model.state_dict().items())
    assert any(not torch.equal(student_before[k], v) for k, v in student.state_dict().items())
    logs = [entry for entry in trainer.state.log_history if "loss" in entry]
    for key in ("contrastive_loss", "kl_loss", "attention_loss", "hidden_loss", "word_level_loss",
                "false_negatives", "false_negative_rate", "fn_threshold"):  # fmt: skip
        assert all(key in entry for entry in logs), key
    assert [entry["fn_threshold"] for entry in logs] == pytest.approx([0.5, 0.1667, -0.1667], abs=1e-3)


def test_ranker_trainer_learns_groups(tiny_backbone_dir, tokenizer, tmp_path):
    from datasets import Dataset
    from transformers import TrainingArguments

    from maeir.trainers import RankerTrainer

    torch.manual_seed(0)
    model, tok, recipe = load_cross_encoder(tiny_backbone_dir, max_length=48)
    collator = RankerCollator(tok, recipe, group_size=4, negative_sampling="first", seed=0)
    batch = collator(_records(2))
    assert batch["input_ids"].shape[0] == 8 and batch["group_valid"].all()
    positive = tok.decode(batch["input_ids"][4], skip_special_tokens=True)
    assert "bureau reports heavy rain" in positive  # query 1's group starts with its positive
    args = TrainingArguments(output_dir=str(tmp_path / "r"), max_steps=12, per_device_train_batch_size=4,
                             learning_rate=3e-3, logging_steps=4, save_strategy="no", report_to="none",
                             use_cpu=True, disable_tqdm=True, seed=0)  # fmt: skip
    trainer = RankerTrainer(model=model, args=args, train_dataset=Dataset.from_list(_records(4)), data_collator=collator,
                            processing_class=tok)  # fmt: skip
    trainer.train()
    losses = [e["ranker_loss"] for e in trainer.state.log_history if "ranker_loss" in e]
    assert losses[-1] < losses[0] and losses[0] == pytest.approx(math.log(4), abs=0.15)


# -- scripts ---------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny_beir(tmp_path_factory, sample_texts):
    """A BEIR folder from real sentences: query = a text's first sentence, document = the rest."""
    from maeir.data.retrieval import write_beir

    corpus, queries, qrels = {}, {}, {"train": {}, "test": {}}
    for i, line in enumerate(sample_texts[:48]):
        sentences = re.split(r"(?<=[.!?])\s+", line)
        if len(sentences) < 3:
            continue
        corpus[f"d{i}"] = {"title": "", "text": " ".join(sentences[1:])}
        queries[f"q{i}"] = sentences[0]
        qrels["train" if i % 3 else "test"][f"q{i}"] = {f"d{i}": 1}
    return str(write_beir(tmp_path_factory.mktemp("beir") / "tiny", corpus, queries, qrels))


def test_train_reranker_rerank_and_ir_measures(tiny_backbone_dir, tiny_beir, tmp_path):
    import ir_measures

    from maeir.cli.evaluate_retrieval import main as evaluate_main
    from maeir.cli.rerank import main as rerank_main
    from maeir.cli.train_reranker import main as train_main
    from maeir.data.retrieval import load_beir

    ranker = tmp_path / "ranker"
    train_main([
        "--model_name_or_path", tiny_backbone_dir, "--beir", tiny_beir, "--output_dir", str(ranker), "--max_length", "96",
        "--max_steps", "2", "--per_device_train_batch_size", "4", "--group_size", "3", "--save_strategy", "no",
        "--report_to", "none", "--disable_tqdm", "true", "--use_cpu", "true",
    ])  # fmt: skip
    model, tok, recipe = load_cross_encoder(ranker)
    assert recipe == RankerRecipe(max_length=96, include_title=True)
    with pytest.raises(ConfigError):
        load_cross_encoder(ranker, max_length=32)  # a trained ranker keeps its recipe
    plain = AutoModelForSequenceClassification.from_pretrained(ranker).eval()  # plain transformers
    pair = tok(["what is rain"], ["rain is water"], return_tensors="pt")
    with torch.no_grad():
        assert plain(**pair).logits.item() == pytest.approx(
            score_pairs(model, tok, recipe, ["what is rain"], ["rain is water"])[0], abs=1e-5
        )
    assert "cross-encoder" in (ranker / "README.md").read_text()

    evaluate_main(["--model", "bm25", "--beir", tiny_beir, "--split", "test", "--output_dir", str(tmp_path / "bm25"),
                   "--show_progress", "false"])  # fmt: skip
    out = tmp_path / "rerank"
    report = rerank_main(["--model", str(ranker), "--beir", tiny_beir, "--split", "test", "--run",
                          str(tmp_path / "bm25" / "run.trec"), "--output_dir", str(out), "--depth", "5",
                          "--show_progress", "false"])  # fmt: skip
    data = load_beir(tiny_beir, "test")
    lines = [line.split() for line in (out / "run.trec").read_text().splitlines()]
    assert all(len(parts) == 6 and parts[1] == "Q0" for parts in lines)
    by_query: dict[str, list] = {}
    for qid, _, doc, rank, score, _ in lines:
        by_query.setdefault(qid, []).append((int(rank), float(score), doc))
    assert set(by_query) == set(data.qrels)
    bm25 = ir_measures.read_trec_run(str(tmp_path / "bm25" / "run.trec"))
    bm25_top: dict[str, list] = {}
    for row in bm25:
        bm25_top.setdefault(row.query_id, []).append((-row.score, row.doc_id))
    for qid, rows in by_query.items():
        assert [r for r, _, _ in rows] == list(range(1, len(rows) + 1))
        assert all(a[1] >= b[1] for a, b in zip(rows, rows[1:]))
        assert {d for _, _, d in rows[:5]} == {
            d for _, d in sorted(bm25_top[qid])[:5]
        }  # the top 5 re-ordered
        assert len(rows) == len(bm25_top[qid])  # the tail is kept
    assert report["queries_without_results"] == 0
    qrels = [ir_measures.Qrel(q, d, r) for q, docs in data.qrels.items() for d, r in docs.items()]
    measured = ir_measures.calc_aggregate(
        [ir_measures.RR @ 10, ir_measures.nDCG @ 10, ir_measures.R @ 100],
        qrels,
        ir_measures.read_trec_run(str(out / "run.trec")),
    )
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["MRR@10"] == pytest.approx(measured[ir_measures.RR @ 10], abs=1e-9)
    assert metrics["nDCG@10"] == pytest.approx(measured[ir_measures.nDCG @ 10], abs=1e-9)
    assert metrics["R@100"] == pytest.approx(measured[ir_measures.R @ 100], abs=1e-9)
    assert metrics["views"]["first_stage"]["MRR@10"] == pytest.approx(
        json.loads((tmp_path / "bm25" / "metrics.json").read_text())["MRR@10"]
    )


def test_distill_script_with_a_wider_teacher_saves_a_plain_bi_encoder(
    tiny_backbone_dir, tiny_beir, tokenizer, tmp_path
):
    from maeir.cli.distill_md2pr import main as distill_main
    from maeir.methods.md2pr.modeling_md2pr import PROJECTION_FILE
    from maeir.modeling import BiEncoderModel, load_bi_encoder

    wide = tmp_path / "wide"
    torch.manual_seed(1)
    config = tiny_config(AutoConfig.from_pretrained(tiny_backbone_dir), hidden_size=96, num_attention_heads=2)
    AutoModelForMaskedLM.from_config(config).save_pretrained(wide)
    tokenizer.save_pretrained(wide)
    model, tok, _ = load_cross_encoder(wide, max_length=128)
    from maeir.retrieval.modeling_cross_encoder import save_cross_encoder

    save_cross_encoder(model, tok, tmp_path / "teacher")
    out = tmp_path / "student"
    result = distill_main([
        "--student", tiny_backbone_dir, "--teacher", str(tmp_path / "teacher"), "--beir", tiny_beir,
        "--output_dir", str(out), "--max_steps", "2", "--per_device_train_batch_size", "3", "--group_size", "3",
        "--query_max_length", "32", "--passage_max_length", "64", "--logging_steps", "1", "--save_strategy", "no",
        "--report_to", "none", "--disable_tqdm", "true", "--use_cpu", "true", "--eval_split", "test",
        "--fn_schedule", "constant", "--fn_threshold_start", "-100",
    ])  # fmt: skip
    assert result["false_negatives_masked"] == 2 * 3 * 2  # every negative of every query at threshold -100
    assert (out / PROJECTION_FILE).is_file()
    saved = json.loads((out / "config.json").read_text())
    assert saved["architectures"] == ["BiEncoderModel"]
    from safetensors import safe_open

    with safe_open(str(out / "model.safetensors"), "pt") as handle:
        assert not any(k.startswith("hidden_projection") for k in handle.keys())
    loaded, _ = load_bi_encoder(out)
    assert type(loaded) is BiEncoderModel
    info = json.loads((out / "maeir_run.json").read_text())
    assert info["md2pr"]["kl_weight"] == 1.0 and info["hyperparameters"]["hidden_projection"] is True
    assert (
        json.loads((out / "md2pr_config.json").read_text())
        == MD2PRConfig(fn_schedule="constant", fn_threshold_start=-100).to_dict()
    )
    assert {"MRR@10", "R@100"} <= set(json.loads((out / "eval_test" / "metrics.json").read_text()))
    assert "0.362" in (out / "README.md").read_text()  # the paper's number in the card


def test_precomputed_teacher_scores_need_no_teacher(tiny_backbone_dir, tiny_ranker_dir, tiny_beir, tmp_path):
    from maeir.cli.distill_md2pr import main as distill_main
    from maeir.cli.evaluate_retrieval import main as evaluate_main
    from maeir.cli.rerank import main as rerank_main
    from maeir.data.retrieval import load_beir, training_records, write_training_jsonl
    from maeir.retrieval.evaluation import read_trec_run

    # The workflow: BM25 on the training split, the ranker scores its top 5 and every judged positive.
    evaluate_main(["--model", "bm25", "--beir", tiny_beir, "--split", "train", "--output_dir", str(tmp_path / "bm25"),
                   "--show_progress", "false"])  # fmt: skip
    rerank_main(["--model", tiny_ranker_dir, "--beir", tiny_beir, "--split", "train", "--run",
                 str(tmp_path / "bm25" / "run.trec"), "--output_dir", str(tmp_path / "teacher"), "--depth", "5",
                 "--all_queries", "true", "--score_judged", "true", "--keep_tail", "false", "--show_progress", "false"])  # fmt: skip
    data = load_beir(tiny_beir, "train")
    scores = read_trec_run(tmp_path / "teacher" / "run.trec")
    bm25 = read_trec_run(tmp_path / "bm25" / "run.trec")
    negatives = {q: [d for d, _ in sorted(bm25[q].items(), key=lambda x: -x[1])[:5] if d not in data.qrels[q]]
                 for q in data.qrels}  # fmt: skip
    assert all(d in scores[q] for q in data.qrels for d in [*data.qrels[q], *negatives[q]])
    write_training_jsonl(tmp_path / "train.jsonl", training_records(data, negatives))
    result = distill_main([
        "--student", tiny_backbone_dir, "--train_file", str(tmp_path / "train.jsonl"), "--output_dir", str(tmp_path / "s"),
        "--teacher_scores_run", str(tmp_path / "teacher" / "run.trec"), "--teacher_scores", "precomputed",
        "--word_level_weight", "0", "--max_steps", "2", "--per_device_train_batch_size", "2", "--group_size", "3",
        "--save_strategy", "no", "--report_to", "none", "--disable_tqdm", "true", "--use_cpu", "true", "--logging_steps", "1",
    ])  # fmt: skip
    assert result["teacher_seconds"] == 0.0  # no teacher forward pass at all
    history = json.loads((tmp_path / "s" / "trainer_state.json").read_text())["log_history"]
    assert all("kl_loss" in e and "attention_loss" not in e for e in history if "loss" in e)
    no_teacher = ["--student", tiny_backbone_dir, "--output_dir", str(tmp_path / "x"), "--max_steps", "1",
                  "--use_cpu", "true", "--report_to", "none"]  # fmt: skip
    with pytest.raises(ConfigError):
        distill_main(no_teacher)


def test_projection_is_kept_out_of_the_student_checkpoint_and_restored(
    tiny_backbone_dir, tokenizer, tmp_path
):
    from maeir.methods.md2pr.modeling_md2pr import PROJECTION_FILE, MD2PRStudentModel
    from maeir.modeling import BiEncoderModel

    student = _student(tiny_backbone_dir)
    student.add_hidden_projection(96)
    student.save_pretrained(tmp_path / "ckpt")
    assert (tmp_path / "ckpt" / PROJECTION_FILE).is_file()
    plain = BiEncoderModel.from_pretrained(tmp_path / "ckpt")  # no unexpected keys: a plain bi-encoder
    assert json.loads((tmp_path / "ckpt" / "config.json").read_text())["architectures"] == ["BiEncoderModel"]
    batch = {
        "input_ids": torch.tensor([[101, 2023, 102]]),
        "attention_mask": torch.ones(1, 3, dtype=torch.long),
    }
    with torch.no_grad():
        assert torch.allclose(plain.encode(**batch)["dense"], student.eval().encode(**batch)["dense"])
        reps, states = student.encode_with_token_states(batch["input_ids"], batch["attention_mask"], "query")
        assert torch.allclose(reps["dense"], plain.encode(**batch)["dense"]) and states.shape == (1, 3, 64)
    resumed = MD2PRStudentModel.from_pretrained(tmp_path / "ckpt")
    resumed.add_hidden_projection(96)
    assert resumed.load_hidden_projection(tmp_path / "ckpt")
    assert torch.equal(resumed.hidden_projection.weight, student.hidden_projection.weight)


@pytest.mark.parametrize("model_type", ["bert", "roberta", "deberta-v2", "electra"])
def test_any_backbone_ranker_and_teacher_recording(model_type, tokenizer, tmp_path):
    """BERT first, RoBERTa and other BERT-like models too (DeBERTa-v2: eager, no SDPA).

    See docs/methods.md#shared-ground.
    """
    config = AutoConfig.for_model(
        model_type, vocab_size=tokenizer.vocab_size, hidden_size=64, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=128, max_position_embeddings=514, pad_token_id=0, type_vocab_size=2,
    )  # fmt: skip
    torch.manual_seed(0)
    AutoModelForMaskedLM.from_config(config).save_pretrained(tmp_path / "backbone")
    tokenizer.save_pretrained(tmp_path / "backbone")
    model, tok, recipe = load_cross_encoder(tmp_path / "backbone", max_length=64)
    teacher = CrossEncoderTeacher(model, tok, recipe, record_attention=True, record_hidden=True)
    enc = tok(
        ["rain today", "a longer query here"], ["heavy rain", "sunny"], padding=True, return_tensors="pt"
    )
    out = teacher(enc["input_ids"], enc["attention_mask"], enc["token_type_ids"])
    eager = AutoModelForSequenceClassification.from_config(model.config, attn_implementation="eager").eval()
    eager.load_state_dict(model.state_dict())
    with torch.no_grad():
        reference = eager(**enc, output_attentions=True, output_hidden_states=True)
    assert torch.allclose(out.scores, reference.logits.view(-1), atol=1e-5)
    assert torch.allclose(out.attention, reference.attentions[-1].mean(1), atol=1e-5)
    assert torch.allclose(out.hidden, reference.hidden_states[-1], atol=1e-5)


def _bpe_roberta_tokenizer(texts):
    from tokenizers import ByteLevelBPETokenizer
    from transformers import RobertaTokenizer

    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(texts, vocab_size=600, special_tokens=["<s>", "<pad>", "</s>", "<unk>", "<mask>"])
    model = json.loads(bpe._tokenizer.to_str())["model"]
    merges = [tuple(m.split()) if isinstance(m, str) else tuple(m) for m in model["merges"]]
    return RobertaTokenizer(vocab=model["vocab"], merges=merges)


def test_spans_with_a_roberta_template(sample_texts):
    tok = _bpe_roberta_tokenizer(sample_texts)
    template = PairTemplate.from_tokenizer(tok)
    assert (template.before, template.between, template.after) == (
        (0,),
        (2, 2),
        (2,),
    )  # <s> a </s></s> b </s>
    config = BiEncoderConfig(query_max_length=32, passage_max_length=64)
    collator = MD2PRCollator(tok, config, group_size=2, negative_sampling="first", seed=0, word_level=True)
    batch = collator(_records(2))
    assert "teacher_token_type_ids" not in batch  # RoBERTa has no token types
    for n in range(4):
        length = int(batch["teacher_attention_mask"][n].sum())
        teacher_ids = batch["teacher_input_ids"][n, :length].tolist()
        query_text = _records(2)[n // 2]["query"]
        passage_text = tok.decode(batch["passage_input_ids"][n], skip_special_tokens=True)
        assert teacher_ids == tok(query_text, passage_text)["input_ids"]
        ql, pt = int(batch["span_query_length"][n]), int(batch["span_passage_teacher_start"][n])
        assert pt == ql + 3  # the passage starts after </s></s>
        pl, ps = int(batch["span_passage_length"][n]), int(batch["span_passage_student_start"][n])
        assert teacher_ids[pt : pt + pl] == batch["passage_input_ids"][n, ps : ps + pl].tolist()


def test_threshold_schedule_spans_an_epoch_based_run(tiny_backbone_dir, tiny_ranker_dir, tokenizer, tmp_path):
    from datasets import Dataset

    from maeir.trainers import MD2PRTrainer

    student = _student(tiny_backbone_dir)
    model, teacher_tokenizer, recipe = load_cross_encoder(tiny_ranker_dir)
    args = _training_args(tmp_path, steps=-1)
    args.num_train_epochs = 1  # 4 examples / 2 per step: 2 steps, known only once training starts
    config = MD2PRConfig(word_level_weight=0, fn_threshold_start=2.0, fn_threshold_end=0.0)
    trainer = MD2PRTrainer(
        model=student, args=args, train_dataset=Dataset.from_list(_records(4)), processing_class=tokenizer,
        data_collator=MD2PRCollator(tokenizer, student.config, group_size=3, seed=0),
        md2pr=config, teacher=CrossEncoderTeacher(model, teacher_tokenizer, recipe),
    )  # fmt: skip
    trainer.train()
    logs = [entry for entry in trainer.state.log_history if "loss" in entry]
    assert [entry["fn_threshold"] for entry in logs] == pytest.approx([2.0, 1.0])
    assert all("teacher_seconds" in entry and "attention_loss" not in entry for entry in logs)
