#!/usr/bin/env python
"""Fine-tune a response-selection bi-encoder (Dial-MAE fine-tuning; see maeir/cli/response_selection.py).

    python scripts/finetune_response_selection.py configs/finetune_response_selection_cpu.yaml \
        --model_name_or_path outputs/dial_mae_cpu --output_dir outputs/rs_dial_mae
    accelerate launch --config_file configs/accelerate/multi_gpu.yaml scripts/finetune_response_selection.py \
        configs/finetune_response_selection_ubuntu.yaml --model_name_or_path RUN --train_file ubuntu/train.txt \
        --output_dir outputs/rs_ubuntu

Trains from a file in the Ubuntu v1 line format (label \t turn ... \t response): positive lines are
(context, response) pairs, negative lines given negatives. Writes a bi-encoder that
`maeir.modeling.load_bi_encoder(OUTPUT_DIR)` loads back with its encoding recipe.
"""

from maeir.cli.commands import finetune_response_selection as main

if __name__ == "__main__":
    main()
