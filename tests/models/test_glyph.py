"""ChineseBERT's glyph bitmaps (real CJK fonts from Debian) and its glyph, pinyin and fusion embeddings."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw, ImageFont

from bertology.assets import AssetMissing
from bertology.models import glyph as glyph_module
from bertology.models.config import BertConfig
from bertology.models.glyph import (
    FusionEmbedding,
    GlyphEmbedding,
    GlyphRenderer,
    MissingGlyphWarning,
    PinyinEmbedding,
)
from bertology.tokenization.pinyin import PINYIN_VOCAB

# Installed by scripts/install.sh: a sans-serif (hei) and a brush (kai) font, two quite different shapes.
MICROHEI = "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc"
UKAI = "/usr/share/fonts/truetype/arphic/ukai.ttc"
FONTS = [MICROHEI, UKAI]
ONLY_IN_UKAI = "\u3401"  # 㐁, CJK Extension A: in ukai's character map, not in microhei's
BLANK = "\ue000"  # private use: in neither font


@pytest.fixture(scope="module")
def renderer() -> GlyphRenderer:
    return GlyphRenderer(FONTS, size=24)


def _runs(profile: np.ndarray, fraction: float = 0.3) -> int:
    """How many separate stretches of an ink profile rise above `fraction` of its maximum."""
    above = profile > fraction * profile.max()
    return int(above[0]) + int(np.sum(above[1:] & ~above[:-1]))


def _pillow_centred(path: str, ch: str, size: int) -> np.ndarray:
    """Pillow directly: find the ink box on a large canvas, then draw once, centred, on size x size."""
    font = ImageFont.truetype(path, size)
    big = Image.new("L", (4 * size, 4 * size), 0)
    ImageDraw.Draw(big).text((size, size), ch, fill=255, font=font)
    ys, xs = np.nonzero(np.asarray(big))
    ink_w, ink_h = xs.max() - xs.min() + 1, ys.max() - ys.min() + 1
    x = size - xs.min() + (size - ink_w) // 2
    y = size - ys.min() + (size - ink_h) // 2
    small = Image.new("L", (size, size), 0)
    ImageDraw.Draw(small).text((int(x), int(y)), ch, fill=255, font=font)
    return np.asarray(small).astype(np.float32) / 255.0


# ---------------------------------------------------------------------------------------------- bitmaps
def test_bitmap_is_the_fonts_own_rendering_centred(renderer):
    bitmaps = renderer.render(["中"])
    assert bitmaps.shape == (1, 2, 24, 24) and bitmaps.dtype == np.float32
    assert 0.0 <= bitmaps.min() and bitmaps.max() <= 1.0
    for k, path in enumerate(FONTS):
        np.testing.assert_array_equal(bitmaps[0, k], _pillow_centred(path, "中", 24))
        ys, xs = np.nonzero(bitmaps[0, k])
        assert abs(xs.min() - (23 - xs.max())) <= 1 and abs(ys.min() - (23 - ys.max())) <= 1


def test_characters_differ_and_ink_follows_stroke_count(renderer):
    b = renderer.render(["中", "国", "一", "鬱"])
    ink = b.sum(axis=(2, 3))  # (chars, fonts)
    for k in range(2):
        assert np.abs(b[0, k] - b[1, k]).mean() > 0.05
        assert ink[2, k] * 3 < ink[3, k], f"一 should hold far less ink than 鬱 in font {k}"


def test_stroke_structure_is_visible(renderer):
    chuan, san = renderer.render(["川", "三"])
    for k in range(2):
        assert _runs(chuan[k].sum(axis=0)) == 3, "川: three vertical strokes across the columns"
        assert _runs(san[k].sum(axis=1)) == 3, "三: three horizontal strokes down the rows"


def test_two_fonts_draw_the_same_character_differently(renderer):
    b = renderer.render(["中", "永"])
    for i in range(2):
        assert np.abs(b[i, 0] - b[i, 1]).mean() > 0.05


@pytest.mark.parametrize("check", ["cmap", "notdef"])
def test_missing_glyphs_fall_back_and_are_reported(check):
    renderer = GlyphRenderer(FONTS, size=24, missing_check=check)
    with pytest.warns(MissingGlyphWarning) as record:
        b = renderer.render(["中", BLANK, ONLY_IN_UKAI])
    assert len(record) == 1
    message = str(record[0].message)
    assert "1 of 3 characters are in no font" in message and "U+E000" in message
    assert "wqy-microhei.ttc lacks 1 characters" in message and "U+3401" in message
    assert not b[1].any(), "a character in no font renders blank in every slot"
    assert b[2, 1].sum() > 5 and np.array_equal(b[2, 0], b[2, 1]), "microhei's slot borrows ukai's glyph"
    assert renderer.last_report.blank == [BLANK]
    assert renderer.last_report.borrowed == {"wqy-microhei.ttc": [ONLY_IN_UKAI]}
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing missing: no warning at all
        renderer.render(["中", "国"])


def test_no_font_installed_names_the_apt_package(monkeypatch, tmp_path):
    monkeypatch.setattr(glyph_module, "KNOWN_CJK_FONTS", ((str(tmp_path / "none.ttc"), "fonts-wqy-microhei"),))
    with pytest.raises(AssetMissing, match="apt-get install -y fonts-wqy-microhei"):
        GlyphRenderer()


# ------------------------------------------------------------------------------------------ glyph table
VOCAB = {"[PAD]": 0, "[UNK]": 1, "中": 2, "##国": 3, "a": 4, "人民": 5, "，": 6, "国": 7}


def test_glyph_table_rows_and_disk_cache(tmp_path, monkeypatch):
    calls: list[int] = []
    render = GlyphRenderer.render

    def counting(self, chars):
        chars = list(chars)
        calls.append(len(chars))
        return render(self, chars)

    monkeypatch.setattr(GlyphRenderer, "render", counting)
    table = GlyphRenderer(FONTS, size=24, cache_dir=tmp_path).glyph_table(VOCAB)
    assert calls == [3]  # 中 国 人, each once although 国 fills two rows
    assert table.shape == (8, 2, 24, 24) and table.dtype == np.float32
    expected = render(GlyphRenderer(FONTS, size=24), ["中", "国", "人"])
    np.testing.assert_array_equal(table[[2, 3, 7, 5]], expected[[0, 1, 1, 2]])
    assert not table[[0, 1, 4, 6]].any(), "special, Latin and punctuation tokens are zeros"
    cached = sorted(tmp_path.glob("*.npy"))
    assert len(cached) == 1 and not list(tmp_path.glob("*.tmp"))

    again = GlyphRenderer(FONTS, size=24, cache_dir=tmp_path).glyph_table(VOCAB)
    assert calls == [3], "a second call loads the cache instead of rendering"
    np.testing.assert_array_equal(again, table)

    smaller = GlyphRenderer(FONTS, size=16, cache_dir=tmp_path).glyph_table(VOCAB)
    assert calls == [3, 3] and smaller.shape == (8, 2, 16, 16), "another size is another table"
    GlyphRenderer(FONTS, size=24, cache_dir=tmp_path).glyph_table({**VOCAB, "民": 8})
    assert calls == [3, 3, 4], "another vocabulary is another table"
    assert len(list(tmp_path.glob("*.npy"))) == 3


# -------------------------------------------------------------------------------------------- modules
@pytest.fixture
def config(tiny_config) -> BertConfig:
    """The shared tiny sizes over a vocabulary of 8 characters (the rows of `_random_table(8)`)."""
    return tiny_config.replace(vocab_size=8)


def _random_table(vocab: int, fonts: int = 2, size: int = 6, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (rng.integers(0, 256, (vocab, fonts, size, size)) / 255.0).astype(np.float32)


def test_pinyin_embedding_shapes_on_any_leading_shape():
    torch.manual_seed(0)
    module = PinyinEmbedding(pinyin_dim=12, embedding_dim=16)
    ids = torch.randint(0, 32, (2, 5, 8))
    out = module(ids)
    assert out.shape == (2, 5, 12)
    flat = module(ids.reshape(10, 8))
    assert flat.shape == (10, 12)
    torch.testing.assert_close(flat, out.reshape(10, 12))
    # by hand: embed -> conv over the 8 positions -> max
    x = module.embedding(ids[0, 0]).T.unsqueeze(0)
    torch.testing.assert_close(module.conv(x).amax(-1)[0], out[0, 0])
    assert module.embedding.num_embeddings == len(PINYIN_VOCAB) == glyph_module.PINYIN_VOCAB_SIZE


def test_glyph_embedding_buffer_is_frozen_and_linear_learns():
    table = _random_table(8)
    module = GlyphEmbedding.from_table(table, glyph_dim=5)
    assert module.glyphs.shape == (8, 2 * 6 * 6) and not module.glyphs.requires_grad
    assert all(p is not module.glyphs for p in module.parameters())
    assert {n for n, _ in module.named_parameters()} == {"proj.weight", "proj.bias"}
    assert "glyphs" in module.state_dict(), "the table travels with a checkpoint"
    ids = torch.tensor([[2, 3, 0], [7, 7, 1]])
    out = module(ids)
    assert out.shape == (2, 3, 5) and module(ids.reshape(-1)).shape == (6, 5)
    flat = torch.from_numpy(table.reshape(8, -1))
    torch.testing.assert_close(out, module.proj(flat[ids]))
    out.sum().backward()
    assert module.proj.weight.grad is not None and module.proj.weight.grad.abs().sum() > 0


def test_fusion_embedding_equals_hand_computation(config):
    torch.manual_seed(0)
    hidden = config.hidden_size
    table = _random_table(8)
    module = FusionEmbedding(config, table, glyph_dim=4, pinyin_dim=3, pinyin_embedding_dim=5).eval()
    with torch.no_grad():  # LayerNorm away from its identity init, so a missed step would show
        module.norm.weight.uniform_(0.5, 1.5)
        module.norm.bias.uniform_(-0.5, 0.5)
    assert isinstance(module.word, torch.nn.Embedding) and module.word.weight.shape == (8, hidden)
    ids = torch.tensor([[2, 3, 5, 0], [7, 1, 0, 0]])
    positions = torch.arange(4).expand(2, 4)
    pinyin = torch.randint(0, 32, (2, 4, 8))
    out = module(ids, positions, None, pinyin)
    assert out.shape == (2, 4, hidden)

    glyph = module.glyph.proj(torch.from_numpy(table.reshape(8, -1))[ids])
    concat = torch.cat([module.word.weight[ids], module.pinyin(pinyin), glyph], dim=-1)
    assert concat.shape[-1] == hidden + 3 + 4
    x = concat @ module.fuse.weight.T + module.fuse.bias + module.position.weight[positions]
    mean, var = x.mean(-1, keepdim=True), x.var(-1, unbiased=False, keepdim=True)
    expected = (x - mean) / torch.sqrt(var + config.layer_norm_eps) * module.norm.weight + module.norm.bias
    torch.testing.assert_close(out, expected)

    segments = torch.ones_like(ids)
    torch.testing.assert_close(module(ids, positions, segments, pinyin), out)  # no segment embedding
    tokens = module(ids.reshape(-1), positions.reshape(-1), None, pinyin.reshape(-1, 8))
    torch.testing.assert_close(tokens, out.reshape(8, hidden))  # unpadded (tokens,) input


def test_fusion_embedding_loads_its_glyphs_from_a_state_dict(config):
    source = FusionEmbedding(config, _random_table(8))
    target = FusionEmbedding(config, n_fonts=2, glyph_size=6)
    assert not target.glyph.glyphs.any()
    target.load_state_dict(source.state_dict())
    assert torch.equal(target.glyph.glyphs, source.glyph.glyphs)
    with pytest.raises(ValueError, match="pinyin_ids have shape"):
        source(torch.tensor([[1, 2]]), torch.tensor([[0, 1]]), None, torch.zeros(1, 3, 8, dtype=torch.long))
    with pytest.raises(ValueError, match="glyph table has 5 rows"):
        FusionEmbedding(config, _random_table(5))
