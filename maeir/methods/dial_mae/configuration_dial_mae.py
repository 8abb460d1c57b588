"""Configuration of Dial-MAE (Su et al., 2023, "Dial-MAE: ConTextual Masked Auto-Encoder for Retrieval-based
Dialogue Systems")."""

from __future__ import annotations

from typing import ClassVar

from ...modeling.backbone import max_positions
from ...modeling.base import PretrainingConfig


class DialMAEConfig(PretrainingConfig):
    """Dial-MAE: the encoder reads the dialogue context, a shallow decoder rebuilds the response.

    Design, defaults and deviations from the authors' code: docs/methods.md#dial-mae.

    The encoder sees ``[CLS] u1 [SEP] ... un [SEP]`` (turns joined with the tokenizer's SEP), of which
    the LAST ``context_max_length`` tokens are kept, masked at ``encoder_mask_rate`` (whole words,
    80/10/10). The decoder sees ``[CLS] response [SEP]`` (the FIRST ``response_max_length`` tokens),
    masked at ``decoder_mask_rate``, embedded with the backbone's embedding module; its position 0
    is then REPLACED by the encoder's final-layer [CLS] hidden state (before any pooler). Loss =
    encoder MLM + ``decoder_loss_weight`` x decoder MLM, both through the backbone's tied head.

    Args:
        encoder_config: the backbone's config.
        encoder_mask_rate: share of the context's words masked for the encoder (paper: 0.30).
        decoder_mask_rate: share of the response's words masked for the decoder (paper: 0.75 on
            Ubuntu, 0.45 on E-commerce).
        whole_word_mask: mask whole words (True) or single sub-tokens (False), both sides.
        mask_replace_prob: share of the encoder's chosen tokens replaced by [MASK] (BERT: 0.8).
        random_replace_prob: share of the encoder's chosen tokens replaced by a random token (0.1);
            the rest stay unchanged.
        decoder_mask_replace_prob: as ``mask_replace_prob``, decoder side. The authors' collator
            applies the same 80/10/10 to the response, so the default is 0.8.
        decoder_random_replace_prob: as ``random_replace_prob``, decoder side (default 0.1).
        context_max_length: encoder tokens kept, specials included; truncation drops the OLDEST
            tokens (the left), keeping [CLS] and the final [SEP] (paper: 256).
        response_max_length: decoder tokens kept, specials included; the response's first tokens
            are kept (paper: 64).
        decoder_layers: depth of the shallow decoder (paper: 1 on Ubuntu, 2 on E-commerce).
        decoder_dropout: dropout inside the decoder; ``None`` keeps the backbone's dropout (as in
            the authors' code, which builds the decoder from the backbone config).
        decoder_loss_weight: weight of the decoder MLM loss (paper: 1.0).
    """

    model_type = "dial_mae"
    encoder_mask_rate: float = 0.30
    decoder_mask_rate: float = 0.75
    whole_word_mask: bool = True
    mask_replace_prob: float = 0.8
    random_replace_prob: float = 0.1
    decoder_mask_replace_prob: float = 0.8
    decoder_random_replace_prob: float = 0.1
    context_max_length: int = 256
    response_max_length: int = 64
    decoder_layers: int = 1
    decoder_dropout: float | None = None
    decoder_loss_weight: float = 1.0

    paper: ClassVar[dict] = {
        "method_title": "Dial-MAE",
        "title": "Dial-MAE: ConTextual Masked Auto-Encoder for Retrieval-based Dialogue Systems",
        "arxiv": "2306.04357",
        "section": "Section 3 (post-training), Section 4 (fine-tuning, R10@k)",
        "bibtex": (
            "@inproceedings{su-etal-2024-dial,\n  title={Dial-{MAE}: {C}on{T}extual Masked Auto-Encoder for"
            " Retrieval-based Dialogue Systems},\n  author={Su, Zhenpeng and Wu, Xing and Zhou, Wei and Ma,"
            " Guangyuan and Hu, Songlin},\n  booktitle={Proceedings of NAACL-HLT 2024 (Volume 1: Long Papers)},\n"
            "  pages={820--830},\n  year={2024},\n  doi={10.18653/v1/2024.naacl-long.47}\n}"
        ),
        "published": {
            "Ubuntu R10@1": 0.918,
            "Ubuntu R10@2": 0.964,
            "Ubuntu R10@5": 0.993,
            "E-commerce R10@1": 0.930,
            "E-commerce R10@2": 0.977,
            "E-commerce R10@5": 0.997,
        },
    }

    def __post_init__(self, **kwargs):
        super().__post_init__(**kwargs)
        self.check_mask_rates("encoder_mask_rate", "decoder_mask_rate")
        self.check_replace_probs("", "decoder_")
        if self.decoder_layers < 1:
            raise ValueError(f"decoder_layers must be >= 1, got {self.decoder_layers}")
        if self.decoder_loss_weight < 0:
            raise ValueError(f"decoder_loss_weight must be >= 0, got {self.decoder_loss_weight}")
        # RoBERTa's positions start after padding_idx: fewer usable than max_position_embeddings
        positions = None if self.encoder_config is None else max_positions(self.encoder_config)
        for name in ("context_max_length", "response_max_length"):
            value = getattr(self, name)
            if value < 3:
                raise ValueError(f"{name} must be >= 3 ([CLS] token [SEP]), got {value}")
            if positions is not None and value > positions:
                raise ValueError(
                    f"{name}={value} exceeds the backbone's max_position_embeddings ({positions} usable)"
                )
