"""``python -m maeir.cli.study CONFIG --output_dir D``."""

from maeir.cli import run_command
from maeir.cli.study import main

run_command(main)
