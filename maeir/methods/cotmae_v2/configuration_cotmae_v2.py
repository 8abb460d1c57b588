"""Configuration of CoT-MAE v2 (Wu et al., 2023, "CoT-MAE v2: Contextual Masked Auto-Encoder with Multi-view
Modeling for Passage Retrieval")."""

from __future__ import annotations

from typing import ClassVar

from ...modeling.base import PretrainingConfig

VIEWS = ("dense", "sparse")
CONTEXT_TYPES = ("nearby", "overlapping", "random")
CONTEXT_SAMPLING = ("mixed", *CONTEXT_TYPES)
SPARSE_PROJECTIONS = ("embeddings", "linear")


class CoTMAEv2Config(PretrainingConfig):
    """CoT-MAE v2: contextual masked auto-encoding with dense + sparse views and AE + AR decoders.

    See docs/methods.md#cot-mae-v2. The encoder reads an anchor span masked at ``encoder_mask_rate`` (MLM loss
    ``L_enc``). Two views of the anchor: dense = the final-layer [CLS] state; sparse = for each
    vocabulary entry the max over the anchor's real positions of ``log(1 + relu(mlm_logits))``,
    top ``sparse_top_k`` entries kept, projected to the hidden size. Each view in turn replaces the
    [CLS] slot of a context span from the same document for two shallow decoders: AE-Dec (context
    masked at ``decoder_mask_rate``, bidirectional, MLM) and AR-Dec (context unmasked, causal,
    position ``i`` predicts token ``i + 1``). ``loss = encoder_loss_weight * L_enc + ae_loss_weight *
    mean_views(L_ae) + ar_loss_weight * mean_views(L_ar)``. The defaults are CoT-MAE v1's code
    (docs/methods.md#cot-mae-v2, "Rates and schedule"); ``configs/cotmae_v2_base_paper_note.yaml`` holds the paper
    note's 15% / batch 1024 / lr 1e-4 / 100k-step recipe.

    Args:
        encoder_config: the backbone's config.
        encoder_mask_rate: share of the anchor's words masked for the encoder (v1 code: 0.30).
        decoder_mask_rate: share of the context's words masked for AE-Dec (v1 code: 0.45).
        whole_word_mask: mask whole words (True) or single sub-tokens (False), both sides.
        mask_replace_prob / random_replace_prob: the encoder's 80/10/10 split of the chosen tokens
            (mask / random / keep).
        decoder_mask_replace_prob / decoder_random_replace_prob: the same for AE-Dec's input (the
            v1 collator applies the same 80/10/10 to the decoder side).
        context_sampling: how each anchor's context span is drawn from its document: ``"nearby"``
            (the previous or next span), ``"overlapping"`` (a span-sized window that starts inside
            the anchor and runs past its end, or ends inside it and starts before it), ``"random"``
            (any other span of the document), or ``"mixed"`` (a type drawn per example, the default).
            *Choice left open by the paper.*
        context_sampling_weights: ``mixed`` only: weights of ``(nearby, overlapping, random)``
            (default equal); a type that an anchor lacks is left out and the rest renormalised.
        symmetric: each batch also holds every pair reversed, so each span is also the other's
            context (the default); the batch then has ``2 x per_device_train_batch_size`` rows.
        views: the views that drive the decoders (``["dense", "sparse"]``; ``["dense"]`` is a
            CoT-MAE v1-like ablation).
        use_ae_decoder / use_ar_decoder: run AE-Dec / AR-Dec (ablations; the method uses both).
        ae_decoder_layers / ar_decoder_layers: depth of each decoder (the authors' multi-view code: 1
            each; 1 to 4 are typical).
        decoder_dropout: dropout inside the decoders; ``None`` keeps the backbone's (v1 builds the
            decoder from the backbone config).
        encoder_loss_weight / ae_loss_weight / ar_loss_weight: loss weights (paper: 1, 1, 1).
        sparse_top_k: entries kept in the pre-training sparse view (0 or None: all, then the full
            ``[B, V]`` vector is formed; default 768, the fine-tuning k of the paper note).
        sparse_projection: how the sparse vector becomes a decoder input of the hidden size.
            ``"embeddings"`` (default): ``LayerNorm(sum_j w_j E_j)`` with the backbone's word
            embeddings ``E`` (no new V x H matrix; gradients reach ``E``). ``"linear"``: a new,
            untied V x H matrix then LayerNorm (V x H more parameters). *Choice left open.*
        sparse_pool_masked_positions: the sparse view pools the anchor's masked positions too (they
            are real text positions even though the encoder reads [MASK] there); False pools only
            positions whose input token is not special. Special tokens of the template ([CLS],
            [SEP]) and padding are never pooled. *Choice left open.*
        sparse_chunk_size: positions per chunk of full-position logits (temporary ``[rows, chunk,
            V]`` fp32); does not change the result.
        sparse_excluded_token_ids: vocabulary ids that never appear in the sparse view and positions
            holding them that are never pooled (the tokenizer's special tokens; filled in by
            ``from_backbone``).
        missing_head_bias: when the backbone checkpoint has no MLM head (e.g. all-MiniLM-L6-v2, a
            sentence-transformers model), ``from_backbone`` starts the head lexical instead of random
            (identity transform, output bias ``missing_head_bias``;
            :func:`maeir.retrieval.pooling.init_lexical_mlm_head`, the retriever's own rule): a random
            head makes every one of the ~30k entries positive, so the sparse view would be top-k noise.
            None keeps a random head. *Choice left open (the paper starts from BERT's trained head).*
        ar_predict_end_token: AR-Dec also predicts the span's closing special token ([SEP]) from the
            last real token, as the authors' AR head does (labels = every non-padding token after
            the view slot); False predicts only the span's non-special tokens. *Choice left open.*
    """

    model_type = "cotmae_v2"
    encoder_mask_rate: float = 0.30
    decoder_mask_rate: float = 0.45
    whole_word_mask: bool = True
    mask_replace_prob: float = 0.8
    random_replace_prob: float = 0.1
    decoder_mask_replace_prob: float = 0.8
    decoder_random_replace_prob: float = 0.1
    context_sampling: str = "mixed"
    context_sampling_weights: list[float] | None = None
    symmetric: bool = True
    views: list[str] | None = None
    use_ae_decoder: bool = True
    use_ar_decoder: bool = True
    ae_decoder_layers: int = 1
    ar_decoder_layers: int = 1
    decoder_dropout: float | None = None
    encoder_loss_weight: float = 1.0
    ae_loss_weight: float = 1.0
    ar_loss_weight: float = 1.0
    sparse_top_k: int | None = 768
    sparse_projection: str = "embeddings"
    sparse_pool_masked_positions: bool = True
    sparse_chunk_size: int = 32
    sparse_excluded_token_ids: list[int] | None = None
    ar_predict_end_token: bool = True
    missing_head_bias: float | None = -6.0

    paper: ClassVar[dict] = {
        "method_title": "CoT-MAE v2",
        "title": "CoT-MAE v2: Contextual Masked Auto-Encoder with Multi-view Modeling for Passage Retrieval",
        "arxiv": "2304.03158",
        "section": "Section 3 (multi-view representation and decoding), Section 3.4 (fine-tuning)",
        "bibtex": (
            "@article{wu2023cotmaev2,\n  title={CoT-MAE v2: Contextual Masked Auto-Encoder with Multi-view"
            " Modeling for Passage Retrieval},\n  author={Wu, Xing and Ma, Guangyuan and Wang, Peng and Lin,"
            " Meng and Lin, Zijia and Zhang, Fuzheng and Hu, Songlin},\n  journal={arXiv preprint"
            " arXiv:2304.03158},\n  year={2023}\n}"
        ),
        "published": {
            "MS MARCO dev MRR@10 (CoT-MAE v1 anchor)": 39.4,
            "MS MARCO dev R@1k (CoT-MAE v1 anchor)": 98.7,
        },
    }

    def __post_init__(self, **kwargs):
        super().__post_init__(**kwargs)
        self.check_mask_rates("encoder_mask_rate", "decoder_mask_rate")
        self.check_replace_probs("", "decoder_")
        if self.context_sampling not in CONTEXT_SAMPLING:
            raise ValueError(
                f"context_sampling must be one of {CONTEXT_SAMPLING}, got {self.context_sampling!r}"
            )
        if self.context_sampling_weights is not None:
            weights = list(self.context_sampling_weights)
            if len(weights) != len(CONTEXT_TYPES) or any(w < 0 for w in weights) or sum(weights) <= 0:
                raise ValueError(
                    f"context_sampling_weights must be {len(CONTEXT_TYPES)} non-negative weights for "
                    f"{CONTEXT_TYPES} with a positive sum, got {self.context_sampling_weights}"
                )
            self.context_sampling_weights = [float(w) for w in weights]
        views = (
            list(VIEWS)
            if self.views is None
            else [self.views]
            if isinstance(self.views, str)
            else list(self.views)
        )
        if not views or any(v not in VIEWS for v in views) or len(set(views)) != len(views):
            raise ValueError(f"views must be a non-empty subset of {VIEWS}, got {self.views}")
        self.views = [v for v in VIEWS if v in views]
        if not (self.use_ae_decoder or self.use_ar_decoder):
            raise ValueError("at least one of use_ae_decoder / use_ar_decoder must be True")
        for name in ("ae_decoder_layers", "ar_decoder_layers", "sparse_chunk_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("encoder_loss_weight", "ae_loss_weight", "ar_loss_weight"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.sparse_top_k is not None and self.sparse_top_k < 0:
            raise ValueError(f"sparse_top_k must be >= 0 or None, got {self.sparse_top_k}")
        if self.sparse_projection not in SPARSE_PROJECTIONS:
            raise ValueError(
                f"sparse_projection must be one of {SPARSE_PROJECTIONS}, got {self.sparse_projection!r}"
            )
        if self.sparse_excluded_token_ids is not None:
            self.sparse_excluded_token_ids = sorted({int(i) for i in self.sparse_excluded_token_ids})
