#!/usr/bin/env python
"""Train a cross-encoder ranker (the MD2PR teacher) with listwise CE over 1 positive + n negatives.

    python scripts/train_reranker.py configs/ranker_cpu.yaml --output_dir outputs/ranker
    python scripts/train_reranker.py --model_name_or_path M --beir DIR --output_dir D --eval_split test
    accelerate launch --config_file configs/accelerate/multi_gpu.yaml scripts/train_reranker.py configs/ranker_msmarco.yaml

See maeir/cli/train_reranker.py.
"""

from maeir.cli.commands import train_reranker as main

if __name__ == "__main__":
    main()
