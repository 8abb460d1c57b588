#!/usr/bin/env python
"""Evaluate a response-selection bi-encoder: R_n@1, R_n@2, R_n@5 and MRR over candidate groups.

    python scripts/evaluate_response_selection.py --model outputs/rs_dial_mae --data test.txt --output metrics.json
    accelerate launch --multi_gpu --num_processes 2 scripts/evaluate_response_selection.py --model M --data F

Groups are keyed by context (consecutive lines with the same turns, or --group_size lines); none is
dropped, groups without a positive are skipped and counted. Prints a table and the JSON
{"R@1", "R@2", "R@5", "MRR", "groups", "skipped", ...}.
"""

from maeir.cli.commands import evaluate_response_selection as main

if __name__ == "__main__":
    main()
