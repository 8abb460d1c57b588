#!/usr/bin/env python
"""Fine-tune an encoder on GLUE-style classification or regression (default data: the embedded tweets).

    python scripts/finetune_classification.py configs/finetune_tweets_cpu.yaml --model_name_or_path DIR --output_dir OUT
    accelerate launch scripts/finetune_classification.py configs/finetune_glue_rte.yaml --model_name_or_path DIR

Writes OUTPUT_DIR/metrics.json (and the fine-tuned model); see maeir.drivers.classification.
"""

import sys

from maeir.drivers import run_cli
from maeir.drivers.classification import main

if __name__ == "__main__":
    if status := run_cli(main):
        sys.exit(status)
