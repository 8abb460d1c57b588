"""Publish a maeir run folder on the Hugging Face Hub (:mod:`maeir.hub`).

    maeir-push-to-hub RUN_DIR --repo_id user/name [--what encoder|full] [--private]
        [--revision main] [--dry-run] [--staging_dir DIR]

Any run kind: a pre-training run (its encoder by default, or ``--what full``), a fine-tuned retriever,
a cross-encoder ranker or an MD2PR student (the whole folder). ``--dry-run`` builds, checks and lists
the upload folder and never touches the network.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from ..cards import ModelCardError
from ..hub import WHATS, HubUploadError, push


def build_parser() -> argparse.ArgumentParser:
    """The command line of ``maeir-push-to-hub``."""
    parser = argparse.ArgumentParser(
        description="Publish a maeir run folder on the Hugging Face Hub: a pre-training run (its encoder, or "
        "the full model), a fine-tuned retriever, a cross-encoder ranker or an MD2PR student."
    )
    parser.add_argument("run_dir", help="the run's output folder (written by any maeir training command)")
    parser.add_argument("--repo_id", required=True, help="target Hub repo, e.g. user/name")
    parser.add_argument(
        "--what",
        choices=WHATS,
        default=None,
        help="a pre-training run: its plain encoder (default) or the full model; other runs: full (default)",
    )
    parser.add_argument("--private", action="store_true", help="create the repo as private")
    parser.add_argument("--revision", default=None, help="branch to push to (default: main)")
    parser.add_argument(
        "--dry-run",
        "--dry_run",
        dest="dry_run",
        action="store_true",
        help="build, check and list; upload nothing",
    )
    parser.add_argument(
        "--staging_dir",
        default=None,
        help="where to build the upload folder (default: under $TMPDIR/maeir-hub)",
    )
    parser.add_argument("--commit_message", default=None)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``maeir-push-to-hub``; returns the exit status."""
    args = build_parser().parse_args(argv)
    try:
        push(
            args.run_dir,
            args.repo_id,
            what=args.what,
            private=args.private,
            revision=args.revision,
            dry_run=args.dry_run,
            staging_dir=args.staging_dir,
            commit_message=args.commit_message,
        )
    except (HubUploadError, ModelCardError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
