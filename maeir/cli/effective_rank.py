"""Effective rank per layer of real-token and [MASK]-token representations, MLM vs MAE-LM.

    maeir-effective-rank --checkpoint mlm=outputs/demo/mlm --checkpoint mae_lm=outputs/demo/mae_lm \
        --output_dir outputs/effective_rank

Each checkpoint is a maeir run folder (full model) or any masked-LM folder. Writes
``effective_rank.csv`` and ``effective_rank.png`` and prints the table.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from transformers import AutoModelForMaskedLM, AutoTokenizer

import maeir  # noqa: F401  (registers the maeir models with the Auto classes)
from maeir.analysis import layerwise_effective_rank
from maeir.data.corpus import load_text_corpus
from maeir.io_utils import atomic_write_text


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    series: dict[tuple, list] = {}
    for row in rows:
        series.setdefault((row["model"], row["stack"], row["tokens"]), []).append(
            (row["layer"], row["effective_rank"])
        )
    for (model, stack, tokens), points in sorted(series.items()):
        points.sort()
        style = "-" if tokens == "real" else "--"
        offset = (
            0
            if stack == "encoder"
            else max(r["layer"] for r in rows if r["model"] == model and r["stack"] == "encoder")
        )
        ax.plot(
            [x + offset for x, _ in points],
            [y for _, y in points],
            style,
            marker="o",
            label=f"{model} {stack} {tokens}",
        )
    ax.set_xlabel("layer (decoder layers follow the encoder's)")
    ax.set_ylabel("effective rank")
    ax.legend(fontsize=7)
    fig.tight_layout()
    tmp = path.with_suffix(".tmp.png")
    fig.savefig(tmp, dpi=120)
    os.replace(tmp, path)


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--checkpoint", action="append", required=True, help="LABEL=PATH, repeatable")
    parser.add_argument("--data", default=None, help="text corpus (.txt/.jsonl); default: embedded Wikipedia")
    parser.add_argument("--num_texts", type=int, default=256)
    parser.add_argument("--max_length", type=int, default=128)
    parser.add_argument("--mask_rate", type=float, default=0.15)
    parser.add_argument("--output_dir", required=True)
    args = parser.parse_args(argv)
    texts = load_text_corpus(args.data, max_samples=args.num_texts)["text"]
    rows: list[dict] = []
    for item in args.checkpoint:
        label, _, path = item.partition("=")
        if not path:
            parser.error(f"--checkpoint expects LABEL=PATH, got {item!r}")
        model = AutoModelForMaskedLM.from_pretrained(path)
        tokenizer = AutoTokenizer.from_pretrained(path)
        rows += layerwise_effective_rank(model, tokenizer, texts, label, args.mask_rate, args.max_length)
    out = Path(args.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    lines = [",".join(rows[0].keys())] + [",".join(str(v) for v in row.values()) for row in rows]
    atomic_write_text(out / "effective_rank.csv", "\n".join(lines) + "\n")
    plot(rows, out / "effective_rank.png")
    print(f"{'model':<10} {'stack':<8} {'layer':>5} {'tokens':<5} {'eff. rank':>9} {'vectors':>7}")
    for row in rows:
        print(
            f"{row['model']:<10} {row['stack']:<8} {row['layer']:>5} {row['tokens']:<5} {row['effective_rank']:>9.2f} {row['vectors']:>7}"
        )
    print(f"wrote {out / 'effective_rank.csv'} and {out / 'effective_rank.png'}")
    return rows


if __name__ == "__main__":
    from maeir.cli import run_command

    run_command(main)
