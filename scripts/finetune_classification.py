#!/usr/bin/env python
"""Fine-tune an encoder on GLUE-style classification or regression (default data: the embedded tweets).

    python scripts/finetune_classification.py configs/finetune_tweets_cpu.yaml --model_name_or_path DIR --output_dir OUT
    accelerate launch scripts/finetune_classification.py configs/finetune_glue_rte.yaml --model_name_or_path DIR

Writes OUTPUT_DIR/metrics.json (and the fine-tuned model); see maeir.cli.classification.
"""

from maeir.cli.commands import classification as main

if __name__ == "__main__":
    main()
