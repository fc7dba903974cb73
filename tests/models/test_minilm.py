"""The real all-MiniLM-L6-v2 weights: parity with transformers and the sentence-transformers recipe."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
import transformers

import bertology
from bertology import BertModel, mean_pool, pool
from bertology.assets import minilm_dir

from ._util import assert_close

transformers.logging.set_verbosity_error()

SENTENCES = [
    "A man is playing a guitar.",
    "Someone plays an instrument.",
    "The stock market fell today.",
    "Hi.",
    "The quick brown fox jumps over the lazy dog.",
    "A woman is slicing onions in the kitchen while the radio plays old songs.",
    "Cats sleep.",
    "Interest rates were raised by the central bank for the third time this year.",
    "He rode his bicycle to work along the river, despite the heavy rain and the strong wind.",
    "Where is the nearest train station?",
    "Photosynthesis converts light energy into chemical energy stored in glucose.",
    "I love you.",
    "The children built a sandcastle on the beach and watched the tide wash it away.",
    "Programming languages differ in how they manage memory.",
    "Yes",
    "After the concert, the audience stood and applauded for several minutes.",
]


@pytest.fixture(scope="module")
def tokenizer():
    return transformers.BertTokenizerFast.from_pretrained(minilm_dir())


@pytest.fixture(scope="module")
def batch(tokenizer) -> dict[str, torch.Tensor]:
    encoded = tokenizer(SENTENCES, padding=True, return_tensors="pt")
    lengths = encoded["attention_mask"].sum(1)
    assert len(set(lengths.tolist())) > 5 and int(lengths.min()) < encoded["input_ids"].shape[1]
    return dict(encoded)


@pytest.fixture(scope="module")
def ours() -> BertModel:
    return BertModel.from_pretrained(minilm_dir(), strict=True)


@pytest.fixture(scope="module")
def theirs():
    return transformers.BertModel.from_pretrained(minilm_dir(), attn_implementation="eager").eval()


@pytest.fixture(scope="module")
def outputs(ours, theirs, batch):
    with torch.no_grad():
        a = ours(**batch, output_hidden_states=True, output_attentions=True)
        b = theirs(**batch, output_hidden_states=True, output_attentions=True)
    return a, b


def test_config_is_minilm(ours):
    cfg = ours.config
    assert (cfg.num_hidden_layers, cfg.hidden_size, cfg.num_attention_heads, cfg.intermediate_size) == (
        6, 384, 12, 1536)
    assert not ours.training


def test_every_output_matches_transformers(outputs):
    a, b = outputs
    assert_close(a.last_hidden_state, b.last_hidden_state, "last hidden state")
    assert len(a.hidden_states) == 7
    for i, (x, y) in enumerate(zip(a.hidden_states, b.hidden_states, strict=True)):
        assert_close(x, y, f"hidden state {i}")
    assert len(a.attentions) == 6
    for i, (x, y) in enumerate(zip(a.attentions, b.attentions, strict=True)):
        assert_close(x, y, f"attentions of layer {i}")
    assert_close(a.pooler_output, b.pooler_output, "pooler output")


@torch.no_grad()
def test_fast_path_matches_transformers_sdpa(ours, batch):
    theirs = transformers.BertModel.from_pretrained(minilm_dir(), attn_implementation="sdpa").eval()
    a = ours(**batch)
    b = theirs(**batch)
    assert_close(a.last_hidden_state, b.last_hidden_state, "last hidden state", batch["attention_mask"])
    assert_close(a.pooler_output, b.pooler_output, "pooler output")
    assert_close(ours(**batch, unpad=False).last_hidden_state, b.last_hidden_state, "padded path, every position")


def _sentence_transformers_recipe(token_embeddings: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """sentence-transformers' mean pooling and Normalize module, written out."""
    mask = attention_mask.unsqueeze(-1).expand(token_embeddings.size()).float()
    summed = torch.sum(token_embeddings * mask, 1)
    counts = torch.clamp(mask.sum(1), min=1e-9)
    return summed / counts


def test_sentence_embeddings_follow_the_recipe(outputs, batch):
    a, b = outputs
    mask = batch["attention_mask"]
    expected = _sentence_transformers_recipe(b.last_hidden_state, mask)
    assert_close(mean_pool(a.last_hidden_state, mask), expected, "mean pooled")
    assert_close(pool(a.last_hidden_state, mask, "mean"), expected, "pool(mean)")
    normalised = pool(a.last_hidden_state, mask, "mean", normalize=True)
    assert_close(normalised, expected / expected.norm(dim=-1, keepdim=True), "normalised")
    assert_close(normalised.norm(dim=-1), torch.ones(len(SENTENCES)), "unit length")


def test_similar_sentences_are_closer(outputs, batch):
    a, _ = outputs
    emb = pool(a.last_hidden_state, batch["attention_mask"], "mean", normalize=True)
    guitar, instrument, market = emb[0], emb[1], emb[2]
    close = float(guitar @ instrument)
    assert close > float(guitar @ market) + 0.2
    assert close > float(instrument @ market) + 0.2
    # and the same through torch's cosine similarity on the unnormalised means
    means = mean_pool(a.last_hidden_state, batch["attention_mask"])
    assert F.cosine_similarity(means[0], means[1], dim=0) > F.cosine_similarity(means[0], means[2], dim=0)


def test_load_returns_a_bert_model():
    model = bertology.load(minilm_dir())
    assert type(model) is BertModel
    assert model.config.hidden_size == 384
    assert not model.training


@torch.no_grad()
def test_our_save_reloads_in_transformers(ours, batch, outputs, tmp_path):
    ours.save_pretrained(tmp_path)
    reloaded = transformers.BertModel.from_pretrained(tmp_path, attn_implementation="eager").eval()
    a, _ = outputs
    b = reloaded(**batch, output_hidden_states=True)
    for i, (x, y) in enumerate(zip(a.hidden_states, b.hidden_states, strict=True)):
        assert_close(x, y, f"hidden state {i}")
    assert_close(a.pooler_output, b.pooler_output, "pooler output")
    original = transformers.BertModel.from_pretrained(minilm_dir()).state_dict()
    for name, tensor in reloaded.state_dict().items():
        assert torch.equal(tensor, original[name]), name
