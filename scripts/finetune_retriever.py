#!/usr/bin/env python
"""Fine-tune a dense / sparse / hybrid bi-encoder with InfoNCE over in-batch and hard negatives.

    python scripts/finetune_retriever.py configs/retriever_cpu.yaml --output_dir outputs/retriever
    python scripts/finetune_retriever.py --model_name_or_path RUN/encoder --beir DIR --output_dir D
    python scripts/finetune_retriever.py configs/retriever_msmarco.yaml --train_file hard.jsonl --output_dir D
    accelerate launch --config_file configs/accelerate/multi_gpu.yaml scripts/finetune_retriever.py ...

See maeir/cli/finetune_retriever.py.
"""

from maeir.cli.commands import finetune_retriever as main

if __name__ == "__main__":
    main()
