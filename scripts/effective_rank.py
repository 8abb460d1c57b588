#!/usr/bin/env python
"""Effective rank per layer of real-token and [MASK]-token representations, MLM vs MAE-LM.

    python scripts/effective_rank.py --checkpoint mlm=outputs/demo/mlm --checkpoint mae_lm=outputs/demo/mae_lm \
        --output_dir outputs/effective_rank

See maeir/cli/effective_rank.py.
"""

from maeir.cli.commands import effective_rank as main

if __name__ == "__main__":
    main()
