#!/usr/bin/env python
"""Multi-stage retriever fine-tuning (CoT-MAE v2): BM25 negatives -> fine-tune -> mine hard negatives with
that model -> fine-tune again from the post-trained checkpoint -> evaluate (dense / sparse / hybrid).

    python scripts/retrieval_pipeline.py configs/cotmae_v2_pipeline_cpu.yaml \
        --model_name_or_path outputs/cotmae_v2_cpu --output_dir outputs/cotmae_v2_pipeline

See maeir/cli/retrieval_pipeline.py.
"""

from maeir.cli.commands import retrieval_pipeline as main

if __name__ == "__main__":
    main()
