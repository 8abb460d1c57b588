#!/usr/bin/env python
"""MD2PR: distil a cross-encoder ranker into a dense dual encoder (sentence + word level, false-negative filtering).

    python scripts/distill_md2pr.py configs/md2pr_cpu.yaml --student minilm --teacher outputs/ranker --output_dir S
    accelerate launch --config_file configs/accelerate/multi_gpu.yaml scripts/distill_md2pr.py configs/md2pr_msmarco.yaml

See maeir/cli/distill_md2pr.py.
"""

from maeir.cli.commands import distill_md2pr as main

if __name__ == "__main__":
    main()
