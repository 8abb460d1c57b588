#!/usr/bin/env python
"""Pre-train an encoder with a masked auto-encoder method.

    python scripts/pretrain.py configs/mae_lm_cpu.yaml --max_steps 100 --output_dir outputs/mae_lm
    accelerate launch --config_file configs/accelerate/multi_gpu.yaml scripts/pretrain.py configs/mae_lm_base.yaml

Writes OUTPUT_DIR/ (the full model, AutoModelForMaskedLM after `import maeir`), OUTPUT_DIR/encoder/
(plain backbone checkpoint) and OUTPUT_DIR/README.md (model card).
"""

from maeir.cli.commands import pretrain as main

if __name__ == "__main__":
    main()
