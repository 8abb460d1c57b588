#!/usr/bin/env python
"""Publish a maeir pre-training run on the Hugging Face Hub.

    python scripts/push_to_hub.py RUN_DIR --repo_id user/name [--what encoder|full] [--private]
        [--revision main] [--dry-run] [--staging_dir DIR]

Builds the exact upload folder (the encoder, or the full model without checkpoints and training
state, plus a model card rendered for the repo), checks it (safetensors weights only, a loadable
config, valid card metadata), prints its files and sizes, then creates the repo and uploads it.
``--dry-run`` stops after the listing and never touches the network. See maeir.hub.
"""

from maeir.cli.commands import push_to_hub as main

if __name__ == "__main__":
    main()
