#!/usr/bin/env python
"""Run a controlled study (arms x seeds: post-train → probe → fine-tune → evaluate) and its report.

    python scripts/study.py configs/study/dial_mae_cpu.yaml --output_dir studies/dial_mae
    python scripts/study.py configs/study/dial_mae_cpu.yaml --output_dir /tmp/smoke --smoke

Writes OUTPUT_DIR/study.json, OUTPUT_DIR/report.md and PNG plots; a killed study resumes where it stopped.
"""

from maeir.cli.commands import study as main

if __name__ == "__main__":
    main()
