#!/usr/bin/env python
"""Re-rank a TREC run with a cross-encoder; writes OUT/run.trec and OUT/metrics.json.

    python scripts/rerank.py --model D --beir DIR --split test --run RUN.trec --output_dir OUT [--depth 100]

Metrics (MRR@10, nDCG@10, R@100, R@1000) as scripts/evaluate_retrieval.py. See maeir/cli/rerank.py.
"""

from maeir.cli.commands import rerank as main

if __name__ == "__main__":
    main()
