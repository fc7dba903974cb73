"""ChineseBERT's glyph and pinyin embeddings and its fusion layer (Sun et al., 2021).

ChineseBERT gives each Chinese character three views: its ordinary embedding, its shape (bitmaps of the
character in several fonts, flattened and mapped by a linear layer) and its sound (a CNN over the pinyin
letters). A fusion layer maps the three, concatenated, back to the hidden size; position embeddings,
LayerNorm and dropout follow as in BERT.

The bitmaps are rendered here with Pillow from CJK fonts that Debian packages install, so nothing is
downloaded; `GlyphRenderer.glyph_table` turns a vocabulary into a (vocab, fonts, size, size) table and
caches it on disk. Which fonts were used decides the table, so a model must keep the same fonts (and
their order) between training and use: the table travels in the model's state dict for that reason.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..assets import AssetMissing
from ..utils.io import atomic_path
from .config import BertConfig
from .dropout import Dropout

__all__ = [
    "KNOWN_CJK_FONTS", "FusionEmbedding", "GlyphEmbedding", "GlyphReport", "GlyphRenderer",
    "MissingGlyphWarning", "PinyinEmbedding", "cjk_font_files", "is_cjk_char", "token_char",
]

logger = logging.getLogger("bertology")

#: CJK fonts that Debian packages put at fixed paths, in the order the renderer prefers them, with the
#: package that installs each (named in the error when none is there).
KNOWN_CJK_FONTS: tuple[tuple[str, str], ...] = (
    ("/usr/share/fonts/truetype/wqy/wqy-microhei.ttc", "fonts-wqy-microhei"),
    ("/usr/share/fonts/truetype/arphic/ukai.ttc", "fonts-arphic-ukai"),
    ("/usr/share/fonts/truetype/arphic/uming.ttc", "fonts-arphic-uming"),
    ("/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc", "fonts-wqy-zenhei"),
    ("/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc", "fonts-noto-cjk"),
    ("/usr/share/fonts/opentype/noto/NotoSerifCJK-Regular.ttc", "fonts-noto-cjk"),
)
#: ChineseBERT's pinyin vocabulary: padding, five tones, 26 letters (bertology.tokenization.pinyin).
PINYIN_VOCAB_SIZE = 32
#: Bumped whenever rendering changes, so that old cached tables are not reused.
_RENDER_VERSION = 1
# A noncharacter: no font maps it, so it renders as the font's .notdef ("tofu") glyph.
_NOT_A_CHAR = "\U0010ffff"

# The code blocks BERT's tokenizer treats as Chinese characters (each becomes its own token).
_CJK_RANGES = (
    (0x4E00, 0x9FFF), (0x3400, 0x4DBF), (0x20000, 0x2A6DF), (0x2A700, 0x2B73F),
    (0x2B740, 0x2B81F), (0x2B820, 0x2CEAF), (0xF900, 0xFAFF), (0x2F800, 0x2FA1F),
)


def is_cjk_char(ch: str) -> bool:
    """True for a CJK ideograph in the ranges BERT's tokenizer splits into single-character tokens."""
    cp = ord(ch)
    return any(lo <= cp <= hi for lo, hi in _CJK_RANGES)


def token_char(token: str) -> str | None:
    """The character whose glyph a vocabulary token gets: its first CJK ideograph ("##中" -> "中")."""
    text = token[2:] if token.startswith("##") else token
    return next((ch for ch in text if is_cjk_char(ch)), None)


def cjk_font_files() -> list[Path]:
    """The known CJK font files installed here; AssetMissing naming the apt package if there are none."""
    found = [Path(p) for p, _ in KNOWN_CJK_FONTS if os.path.isfile(p)]
    if not found:
        packages = " ".join(dict.fromkeys(pkg for _, pkg in KNOWN_CJK_FONTS[:2]))
        raise AssetMissing(
            "no CJK font found among " + ", ".join(p for p, _ in KNOWN_CJK_FONTS)
            + f"; install one with: apt-get install -y {packages}"
        )
    return found


class MissingGlyphWarning(UserWarning):
    """Some characters were missing from a font (borrowed from another) or from every font (blank)."""


@dataclass
class GlyphReport:
    """What one `render` call had to make up: glyphs borrowed from another font, and blank ones."""

    n_chars: int = 0
    #: font file name -> the characters it lacks that another font supplied
    borrowed: dict[str, list[str]] = field(default_factory=dict)
    #: characters no font has: their bitmaps are all zeros in every font slot
    blank: list[str] = field(default_factory=list)

    def summary(self, first: int = 10) -> str:
        def show(chars: list[str]) -> str:
            shown = " ".join(f"{c}(U+{ord(c):04X})" for c in chars[:first])
            return shown + (" ..." if len(chars) > first else "")

        parts = []
        if self.blank:
            parts.append(f"{len(self.blank)} of {self.n_chars} characters are in no font and render blank: "
                         f"{show(self.blank)}")
        for font, chars in self.borrowed.items():
            parts.append(f"{font} lacks {len(chars)} characters, drawn from another font: {show(chars)}")
        return "; ".join(parts)


class _Font:
    """One font file at one pixel size, and an honest answer to "does it have this character"."""

    def __init__(self, path: Path, size: int, missing_check: str) -> None:
        from PIL import ImageFont  # deferred so that importing the models needs no Pillow

        self.path = path
        self.font = ImageFont.truetype(str(path), size=size, index=0)
        self.canvas = 3 * size  # room for any ink around an origin at (size, size)
        self.cmap: set[int] | None = None
        if missing_check in ("auto", "cmap"):
            self.cmap = _cmap(path, required=missing_check == "cmap")
        self.notdef = self.raster(_NOT_A_CHAR) if self.cmap is None else None

    def raster(self, ch: str) -> np.ndarray:
        """The character drawn with its origin at (size, size) on a 3*size square canvas, uint8."""
        from PIL import Image, ImageDraw

        image = Image.new("L", (self.canvas, self.canvas), 0)
        ImageDraw.Draw(image).text((self.canvas // 3, self.canvas // 3), ch, fill=255, font=self.font)
        return np.asarray(image)

    def has(self, ch: str, raster: np.ndarray) -> bool:
        if self.cmap is not None:
            return ord(ch) in self.cmap
        # Without a cmap: a character the font lacks is drawn as its .notdef glyph, pixel for pixel.
        return not np.array_equal(raster, self.notdef)


def _cmap(path: Path, required: bool) -> set[int] | None:
    """The code points a font maps (fontTools, when installed: it is exact), else None."""
    try:
        from fontTools.ttLib import TTFont
    except ImportError:
        if required:
            raise ImportError("missing_check='cmap' needs fontTools: pip install fonttools") from None
        return None
    with TTFont(str(path), fontNumber=0, lazy=True) as font:
        return set(font.getBestCmap() or {})


def _centre(raster: np.ndarray, size: int) -> np.ndarray:
    """A size x size window of `raster` with the ink's bounding box in its middle (clipped if larger)."""
    rows = np.flatnonzero(raster.any(axis=1))
    cols = np.flatnonzero(raster.any(axis=0))
    if not len(rows):
        return np.zeros((size, size), dtype=np.uint8)
    # Margins (size - ink) // 2 above and left; an odd pixel left over goes below and right.
    top = int(rows[0]) - (size - (int(rows[-1]) - int(rows[0]) + 1)) // 2
    left = int(cols[0]) - (size - (int(cols[-1]) - int(cols[0]) + 1)) // 2
    padded = np.pad(raster, size)  # so that a window past the canvas edge reads zeros
    return padded[top + size: top + 2 * size, left + size: left + 2 * size].copy()


class GlyphRenderer:
    """Renders characters as size x size grayscale bitmaps (float32 in [0, 1]) in several CJK fonts.

    Each character is drawn with Pillow at a pixel size of `size` and centred on its ink. For each font
    slot, a character that font lacks is drawn from the next font that has it (so every slot holds a
    real glyph), and as a blank bitmap if no font has it; each call reports these in one
    `MissingGlyphWarning` and keeps the details in `last_report`.

    `missing_check` says how "the font lacks it" is decided: "cmap" reads the font's character map
    with fontTools (exact), "notdef" compares the drawing with the font's .notdef glyph (Pillow only),
    "auto" uses the cmap when fontTools is installed.
    """

    def __init__(self, fonts: Sequence[str | os.PathLike] | None = None, size: int = 24,
                 cache_dir: str | os.PathLike | None = None, missing_check: str = "auto") -> None:
        if size < 8:
            raise ValueError(f"size must be at least 8 pixels, got {size}")
        if missing_check not in ("auto", "cmap", "notdef"):
            raise ValueError(f"missing_check must be 'auto', 'cmap' or 'notdef', got {missing_check!r}")
        paths = cjk_font_files() if fonts is None else [Path(f) for f in fonts]
        if not paths:
            raise ValueError("fonts is empty; pass at least one font file (or None for the installed ones)")
        for path in paths:
            if not path.is_file():
                raise AssetMissing(f"font file {path} does not exist")
        self.fonts = paths
        self.size = int(size)
        self.cache_dir = Path(cache_dir) if cache_dir is not None else None
        self.missing_check = missing_check
        self.last_report = GlyphReport()
        self._faces: list[_Font] | None = None

    @property
    def n_fonts(self) -> int:
        return len(self.fonts)

    def _loaded(self) -> list[_Font]:
        if self._faces is None:
            self._faces = [_Font(p, self.size, self.missing_check) for p in self.fonts]
        return self._faces

    def render(self, chars: Iterable[str]) -> np.ndarray:
        """Bitmaps of `chars`, shape (n_chars, n_fonts, size, size), float32 in [0, 1]."""
        return self._render_uint8(list(chars)).astype(np.float32) / 255.0

    def _render_uint8(self, chars: list[str]) -> np.ndarray:
        faces = self._loaded()
        n = len(faces)
        out = np.zeros((len(chars), n, self.size, self.size), dtype=np.uint8)
        report = GlyphReport(n_chars=len(chars))
        for i, ch in enumerate(chars):
            if len(ch) != 1:
                raise ValueError(f"render takes single characters, got {ch!r}")
            own: list[np.ndarray | None] = []
            for face in faces:
                raster = face.raster(ch)
                own.append(_centre(raster, self.size) if face.has(ch, raster) else None)
            if all(g is None for g in own):
                report.blank.append(ch)
                continue
            for k in range(n):
                # Slot k: font k, else the next font (cyclically) that has the character.
                source = next(j % n for j in range(k, k + n) if own[j % n] is not None)
                if source != k:
                    report.borrowed.setdefault(faces[k].path.name, []).append(ch)
                out[i, k] = own[source]
        self.last_report = report
        if report.blank or report.borrowed:
            warnings.warn(f"glyphs: {report.summary()}", MissingGlyphWarning, stacklevel=3)
        return out

    # ------------------------------------------------------------------------------------- vocabularies
    def cache_key(self, vocab: Mapping[str, int]) -> str:
        """A hash of everything the table depends on: font files (path, size, mtime), pixel size, vocab."""
        fonts = []
        for path in self.fonts:
            stat = path.stat()
            fonts.append([str(path.resolve()), stat.st_size, stat.st_mtime_ns])
        tokens = sorted(vocab.items(), key=lambda item: (item[1], item[0]))
        blob = json.dumps({"version": _RENDER_VERSION, "fonts": fonts, "size": self.size,
                           "check": self.missing_check, "vocab": tokens}, ensure_ascii=False)
        return hashlib.sha256(blob.encode("utf-8")).hexdigest()

    def cache_path(self, vocab: Mapping[str, int]) -> Path | None:
        if self.cache_dir is None:
            return None
        return self.cache_dir / f"glyphs-{self.n_fonts}x{self.size}px-{self.cache_key(vocab)[:24]}.npy"

    def glyph_table(self, vocab: Mapping[str, int]) -> np.ndarray:
        """Bitmaps for a vocabulary, shape (vocab_size, n_fonts, size, size), float32 in [0, 1].

        Row i is the glyph of token i's first CJK ideograph ("中" and "##中" alike); other tokens are
        zeros. With a `cache_dir`, the table is stored there as a .npy (uint8, written atomically) under
        a hash of fonts, size and vocabulary, and later calls load it instead of rendering (missing
        glyphs are warned about when the table is rendered, not each time it is loaded).
        """
        return self.glyph_table_uint8(vocab).astype(np.float32) / 255.0

    def glyph_table_uint8(self, vocab: Mapping[str, int]) -> np.ndarray:
        """`glyph_table` as stored: 8-bit coverage, 0..255 (what the fonts rasterise to, so lossless)."""
        if not vocab:
            raise ValueError("vocab is empty")
        shape = (max(vocab.values()) + 1, self.n_fonts, self.size, self.size)
        path = self.cache_path(vocab)
        if path is not None and path.is_file():
            try:
                table = np.load(path, allow_pickle=False)
                if table.shape == shape and table.dtype == np.uint8:
                    return table
            except (OSError, ValueError) as exc:
                logger.warning("glyph cache %s is unreadable (%s); rendering again", path, exc)
        rows: dict[str, list[int]] = {}
        for token, index in vocab.items():
            ch = token_char(token)
            if ch is not None:
                rows.setdefault(ch, []).append(index)
        chars = sorted(rows)
        table = np.zeros(shape, dtype=np.uint8)
        if chars:
            bitmaps = np.rint(self.render(chars) * 255.0).astype(np.uint8)
            for ch, bitmap in zip(chars, bitmaps, strict=True):
                table[rows[ch]] = bitmap
        if path is not None:
            with atomic_path(path) as tmp:
                with open(tmp, "wb") as handle:  # a handle, or numpy would append ".npy" to the name
                    np.save(handle, table, allow_pickle=False)
        return table


# ---------------------------------------------------------------------------------------------- modules
class GlyphEmbedding(nn.Module):
    """Token -> its glyph bitmaps (a frozen table, flattened over fonts and pixels) -> Linear to glyph_dim.

    The table is a buffer: bitmaps are data, not parameters, and only the linear map learns (ChineseBERT
    maps the flattened fonts with one linear layer). It is kept as uint8 coverage, lossless and four
    times smaller than float32, and it is saved with the model so that a checkpoint does not depend on
    the fonts of the machine that loads it.
    """

    def __init__(self, vocab_size: int, glyph_dim: int, n_fonts: int, glyph_size: int = 24,
                 table: np.ndarray | torch.Tensor | None = None) -> None:
        super().__init__()
        self.n_fonts, self.glyph_size = int(n_fonts), int(glyph_size)
        flat = self.n_fonts * self.glyph_size ** 2
        self.register_buffer("glyphs", torch.zeros(vocab_size, flat, dtype=torch.uint8))
        self.proj = nn.Linear(flat, glyph_dim)
        if table is not None:
            self.set_table(table)

    @classmethod
    def from_table(cls, table: np.ndarray | torch.Tensor, glyph_dim: int) -> GlyphEmbedding:
        """Build around a (vocab, n_fonts, size, size) table from `GlyphRenderer.glyph_table`."""
        if table.ndim != 4 or table.shape[-1] != table.shape[-2]:
            raise ValueError(f"glyph table must have shape (vocab, n_fonts, size, size), got {tuple(table.shape)}")
        return cls(table.shape[0], glyph_dim, table.shape[1], table.shape[2], table)

    def set_table(self, table: np.ndarray | torch.Tensor) -> None:
        """Replace the bitmaps: floats in [0, 1] (as rendered) or uint8 coverage 0..255."""
        t = torch.as_tensor(np.asarray(table) if not isinstance(table, torch.Tensor) else table)
        expected = (self.glyphs.shape[0], self.n_fonts, self.glyph_size, self.glyph_size)
        if tuple(t.shape) != expected:
            raise ValueError(f"glyph table has shape {tuple(t.shape)}, expected {expected}")
        if t.is_floating_point():
            if t.numel() and (float(t.min()) < 0.0 or float(t.max()) > 1.0):
                raise ValueError("a float glyph table must lie in [0, 1]")
            t = torch.round(t.float() * 255.0)
        self.glyphs.copy_(t.reshape(expected[0], -1).to(torch.uint8))

    def bitmaps(self, input_ids: torch.Tensor) -> torch.Tensor:
        """The flattened bitmaps of `input_ids`, shape (..., n_fonts*size*size), in [0, 1]."""
        return self.glyphs[input_ids].to(self.proj.weight.dtype) / 255.0

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        return self.proj(self.bitmaps(input_ids))


class PinyinEmbedding(nn.Module):
    """Pinyin ids (..., L) -> embed each letter -> Conv1d (kernel 2) over the L positions -> max-pool.

    As in ChineseBERT: the CNN sees letter bigrams, so it can learn finals and tones regardless of
    where they sit in the padded sequence. Works on any leading shape ((batch, seq) or unpadded tokens).
    """

    def __init__(self, pinyin_dim: int, embedding_dim: int = 128, vocab_size: int = PINYIN_VOCAB_SIZE) -> None:
        super().__init__()
        self.pinyin_dim = pinyin_dim
        self.embedding = nn.Embedding(vocab_size, embedding_dim)
        self.conv = nn.Conv1d(embedding_dim, pinyin_dim, kernel_size=2)

    def forward(self, pinyin_ids: torch.Tensor) -> torch.Tensor:
        *lead, length = pinyin_ids.shape
        if length < 2:
            raise ValueError(f"pinyin_ids need at least 2 positions in their last dimension, got {length}")
        x = self.embedding(pinyin_ids.reshape(-1, length))  # (n, L, E)
        x = self.conv(x.transpose(1, 2))  # (n, D, L-1)
        return x.amax(dim=-1).reshape(*lead, self.pinyin_dim)


class FusionEmbedding(nn.Module):
    """ChineseBERT's input layer: [char; pinyin; glyph] -> Linear -> + position -> LayerNorm -> dropout.

    Same call shape as BERT's embedding plus `pinyin_ids`, so that `BertModel.embed` can hand it the
    (possibly unpadded) tokens; `segments` is accepted and ignored, since ChineseBERT's paper has no
    segment embedding. `word` is the character table, for an MLM head to tie its decoder to.
    The concatenation order (char, pinyin, glyph) is that of ChineseBERT's released code.

    Sizes come from `config` (vocab, hidden size, positions, dropout, LayerNorm eps) and keywords:
    `glyph_dim` and `pinyin_dim` default to the hidden size, as in ChineseBERT. Pass the rendered
    `glyphs` table, or `n_fonts` (and `glyph_size`) to make room for one loaded from a checkpoint.
    """

    def __init__(self, config: BertConfig, glyphs: np.ndarray | torch.Tensor | None = None, *,
                 n_fonts: int | None = None, glyph_size: int = 24, glyph_dim: int | None = None,
                 pinyin_dim: int | None = None, pinyin_embedding_dim: int = 128,
                 pinyin_vocab_size: int = PINYIN_VOCAB_SIZE) -> None:
        super().__init__()
        hidden = config.hidden_size
        if glyphs is not None:
            if glyphs.ndim != 4:
                raise ValueError(f"glyphs must have shape (vocab, n_fonts, size, size), got {tuple(glyphs.shape)}")
            if n_fonts is not None and n_fonts != glyphs.shape[1]:
                raise ValueError(f"n_fonts={n_fonts} but the glyph table holds {glyphs.shape[1]} fonts")
            n_fonts, glyph_size = int(glyphs.shape[1]), int(glyphs.shape[2])
        if n_fonts is None:
            raise ValueError("pass the glyph table (glyphs=...) or at least n_fonts")
        if glyphs is not None and glyphs.shape[0] != config.vocab_size:
            raise ValueError(f"the glyph table has {glyphs.shape[0]} rows, config.vocab_size is {config.vocab_size}")
        glyph_dim, pinyin_dim = glyph_dim or hidden, pinyin_dim or hidden
        self.word = nn.Embedding(config.vocab_size, hidden, padding_idx=config.pad_token_id)
        self.pinyin = PinyinEmbedding(pinyin_dim, pinyin_embedding_dim, pinyin_vocab_size)
        self.glyph = GlyphEmbedding(config.vocab_size, glyph_dim, n_fonts, glyph_size, glyphs)
        self.fuse = nn.Linear(hidden + pinyin_dim + glyph_dim, hidden)
        self.position = nn.Embedding(config.max_position_embeddings, hidden)
        self.norm = nn.LayerNorm(hidden, eps=config.layer_norm_eps)
        self.dropout = Dropout(config.hidden_dropout_prob)

    def forward(self, ids: torch.Tensor, positions: torch.Tensor, segments: torch.Tensor | None,
                pinyin_ids: torch.Tensor) -> torch.Tensor:
        if pinyin_ids.shape[:-1] != ids.shape:
            raise ValueError(f"pinyin_ids have shape {tuple(pinyin_ids.shape)}; expected "
                             f"{tuple(ids.shape)} + (pinyin length,)")
        fused = self.fuse(torch.cat([self.word(ids), self.pinyin(pinyin_ids), self.glyph(ids)], dim=-1))
        return self.dropout(self.norm(fused + self.position(positions)))

    def extra_repr(self) -> str:
        return f"fonts={self.glyph.n_fonts}, glyph_size={self.glyph.glyph_size}"

