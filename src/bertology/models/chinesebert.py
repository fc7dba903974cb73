"""ChineseBERT: BERT's encoder over a fusion of character, glyph and pinyin embeddings (Sun et al., 2021).

The glyph table (each character rendered in several installed CJK fonts) is a buffer saved with the
weights, so a checkpoint does not depend on the fonts of the machine that loads it; the font files it was
rendered from are recorded in the config. There is no segment embedding.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from .bert import BERT_ENCODER_NAMES, LEGACY_NAMES, BertForMaskedLM, BertModel
from .checkpoint import NameMap, Rule
from .config import BertConfig
from .family import Family, register_family
from .glyph import FusionEmbedding, GlyphRenderer
from .pretrained import register


@dataclass
class ChineseBertConfig(BertConfig):
    type_vocab_size: int = 0
    #: font files the glyph table was rendered from, in order (one glyph channel each)
    glyph_fonts: list | None = None
    glyph_size: int = 24
    glyph_dim: int | None = None
    pinyin_dim: int | None = None
    pinyin_embedding_dim: int = 128
    model_type: str = "chinesebert"


# Our own layout (transformers has no ChineseBERT): the fusion embedding under its own names, the encoder
# under BERT's.
CHINESEBERT_NAMES = NameMap(
    [Rule("embeddings.{rest}", "embeddings.{rest}")]
    + [r for r in BERT_ENCODER_NAMES.rules if not r.theirs.startswith("embeddings.")],
    legacy=LEGACY_NAMES,
)


@register("chinesebert")
class ChineseBertModel(BertModel):
    config_class = ChineseBertConfig
    base_prefix = "chinesebert."
    token_inputs = ("pinyin_ids",)

    def build_embeddings(self, config: ChineseBertConfig, glyphs=None) -> nn.Module:
        n_fonts = len(config.glyph_fonts) if config.glyph_fonts else None
        return FusionEmbedding(config, glyphs, n_fonts=n_fonts, glyph_size=config.glyph_size,
                               glyph_dim=config.glyph_dim, pinyin_dim=config.pinyin_dim,
                               pinyin_embedding_dim=config.pinyin_embedding_dim)

    @classmethod
    def name_map(cls) -> NameMap:
        return CHINESEBERT_NAMES

    @classmethod
    def for_tokenizer(cls, config: ChineseBertConfig, tokenizer, fonts=None, cache_dir=None,
                      **kwargs) -> ChineseBertModel:
        """Render the glyph table for the tokenizer's vocabulary with the installed (or given) fonts."""
        renderer = GlyphRenderer(fonts, size=config.glyph_size, cache_dir=cache_dir)
        table = renderer.glyph_table(tokenizer.vocab)
        config.glyph_fonts = [str(f) for f in renderer.fonts]
        return cls(config, glyphs=table, **kwargs)


@register("chinesebert")
class ChineseBertForMaskedLM(BertForMaskedLM):
    config_class = ChineseBertConfig
    encoder_class = ChineseBertModel
    base_prefix = "chinesebert."

    @classmethod
    def name_map(cls) -> NameMap:
        from .bert import BERT_MLM_NAMES

        return CHINESEBERT_NAMES.with_prefix("chinesebert.", "bert.") + BERT_MLM_NAMES


register_family(Family("chinesebert", ChineseBertConfig, ChineseBertModel, None, ChineseBertForMaskedLM))
