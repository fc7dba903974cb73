"""BART-style denoising: the instance transform (alignment, specials, target, reproducibility, MLM labels), the
decoder's loss by hand, the export without the decoder, the refusals, and a tiny run of the recipe."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from pretrain_helpers import tiny_overrides
from safetensors.torch import load_file

import bertology.objectives.denoising  # noqa: F401  (registers 'denoise')
from bertology import BertConfig, load
from bertology.data.collate import PretrainingCollator
from bertology.data.maskers import MaskingConfig, TokenMasker
from bertology.data.transforms import TransformContext
from bertology.errors import ConfigError
from bertology.models.albert import AlbertConfig, AlbertModel
from bertology.models.bert import BertModel
from bertology.objectives import PretrainingModel
from bertology.objectives.base import RunFacts
from bertology.objectives.denoising import DenoiseOptions, Denoising, DenoisingTransform
from bertology.runs.pretrain import Pretraining, load_config

CLS, SEP, PAD, MASK, UNK = 2, 3, 0, 4, 1
CONTEXT = TransformContext(100, CLS, SEP, PAD, MASK, UNK, frozenset({0, 1, 2, 3, 4}))
CFG = BertConfig(vocab_size=100, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=48,
                 max_position_embeddings=64, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)


def _examples(n=8, seed=0, inner_sep=False):
    """[CLS] three sentences (distinct ids) [SEP]; with `inner_sep`, a document boundary [SEP] inside."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        lengths = rng.integers(4, 12, 3)
        body = np.arange(10, 10 + lengths.sum())
        starts = np.zeros(len(body), bool)
        starts[np.cumsum(lengths)[:-1]] = True
        starts[0] = i % 2 == 0  # odd instances begin with the continuation of a cut sentence
        if inner_sep:
            cut = int(lengths[0])
            body = np.concatenate([body[:cut], [SEP], body[cut:]])
            starts = np.concatenate([starts[:cut], [False], starts[cut:]])
        ids = np.concatenate([[CLS], body, [SEP]]).astype(np.int64)
        special = np.isin(ids, [CLS, SEP])
        out.append({"index": 50 + i, "input_ids": ids, "token_type_ids": np.zeros(len(ids), np.int64),
                    "maskable": ~special, "word_starts": np.ones(len(ids), bool),
                    "sentence_starts": np.concatenate([[False], starts, [False]]), "document": i})
    return out


def _collator(options=None, masker=None, seed=1):
    return PretrainingCollator(masker, PAD, seed, transforms=[DenoisingTransform(options or DenoiseOptions(), CONTEXT)])


def test_transform_keeps_fields_aligned_and_specials_and_stores_the_target():
    collate = _collator(DenoiseOptions(mask_rate=0.1, delete_rate=0.1, rotate=False))
    for ex in _examples(inner_sep=True):
        item = collate.instance(ex, epoch=0)
        ids, n = item["input_ids"], len(item["input_ids"])
        assert ids[0] == CLS and ids[-1] == SEP and (ids == SEP).sum() == 2  # specials in place, the inner one kept
        assert n <= len(ex["input_ids"])
        for field in ("original_ids", "labels", "token_type_ids", "maskable", "word_starts", "sentence_starts"):
            assert len(item[field]) == n
        assert (item["labels"] == -100).all() and (item["token_type_ids"] == 0).all()
        assert not item["maskable"][ids == MASK].any() and not item["maskable"][[0, -1]].any()
        assert item["word_starts"][ids == MASK].all()
        assert item["sentence_starts"].sum() <= 3 and not item["sentence_starts"][[0, -1]].any()
        body = ex["input_ids"][1:]
        assert np.array_equal(item["denoise_target"], body)  # the original body and its [SEP]
        assert np.array_equal(item["denoise_inputs"], np.concatenate([[CLS], body[:-1]]))  # shifted right
        assert set(ids[ids != MASK].tolist()) <= set(ex["input_ids"].tolist())


def test_default_noise_infills_30_percent_and_permutes_sentences():
    collate = _collator()
    covered = total = moved = 0
    for ex in _examples(200, seed=3):
        item = collate.instance(ex, epoch=0)
        body, new = ex["input_ids"][1:-1], item["input_ids"][1:-1]
        kept = new[new != MASK]
        covered += len(body) - len(kept)
        total += len(body)
        assert (new == MASK).sum() >= 1 and sorted(set(kept)) == sorted(kept)  # no token twice
        moved += not np.array_equal(np.sort(kept), kept)  # a permutation shows as tokens out of order
    assert abs(covered / total - 0.3) < 0.02
    assert moved > 0.6 * 200  # 3 sentences: 5 of 6 orders move something


def test_transform_is_reproducible_from_seed_epoch_and_index():
    collate = _collator(DenoiseOptions(delete_rate=0.1, rotate=True))
    examples = _examples()
    whole = collate(examples, epoch=1)
    first, rest = collate(examples[:3], epoch=1), collate(examples[3:], epoch=1)
    for r in range(3):
        n = int(whole["attention_mask"][r].sum())
        assert torch.equal(whole["input_ids"][r, :n], first["input_ids"][r, :n])
    n = int(whole["attention_mask"][3].sum())
    assert torch.equal(whole["input_ids"][3, :n], rest["input_ids"][0, :n])
    assert torch.equal(collate(examples, epoch=1)["input_ids"], whole["input_ids"])
    assert not torch.equal(collate(examples, epoch=2)["input_ids"], whole["input_ids"])
    assert not torch.equal(_collator(DenoiseOptions(delete_rate=0.1, rotate=True), seed=2)(examples, 1)["input_ids"],
                           whole["input_ids"])


def test_mlm_labels_follow_their_tokens_through_the_noise():
    masker = TokenMasker(MaskingConfig(rate=0.3, mask_prob=1.0, random_prob=0.0), mask_token_id=MASK,
                         unk_token_id=UNK, vocab_size=100, special_ids={0, 1, 2, 3, 4})
    options = DenoiseOptions(delete_rate=0.15, infill_rate=0.2, permute_sentences=False)
    only_masked = PretrainingCollator(masker, PAD, 1)
    both = _collator(options, masker)
    labelled = 0
    for ex in _examples(30, seed=5):
        before = only_masked.instance(ex, epoch=0)
        after = both.instance(ex, epoch=0)
        hit = after["labels"] != -100
        labelled += int(hit.sum())
        assert (after["input_ids"][hit] == MASK).all()
        assert np.array_equal(after["labels"][hit], after["original_ids"][hit])  # the token that was there
        old = before["labels"][before["labels"] != -100].tolist()
        new = after["labels"][hit].tolist()
        it = iter(old)
        assert all(x in it for x in new)  # the surviving labels, in order (no permutation here)
        assert np.array_equal(after["denoise_target"], ex["input_ids"][1:])  # the text before masking
    assert labelled > 0
    torch.manual_seed(0)
    out = PretrainingModel(CFG, ["mlm", "denoise"])(**both(_examples(4, seed=5)))  # the combination trains
    assert set(out.losses) == {"mlm", "denoise"} and all(torch.isfinite(v) for v in out.losses.values())


def test_decoder_loss_by_hand():
    torch.manual_seed(0)
    model = PretrainingModel(CFG, ["denoise"]).eval()
    batch = _collator(DenoiseOptions(delete_rate=0.1))(_examples(4, seed=7))
    with torch.no_grad():
        out = model(**batch)
        memory = model.bert(batch["input_ids"], batch["attention_mask"], batch["token_type_ids"],
                            unpad=False).last_hidden_state
        decoder = model.objectives["denoise"].decoder
        word = model.bert.embeddings.word.weight
        assert decoder.output.weight is word  # tied to the encoder's word embeddings
        inputs, target = batch["denoise_inputs"], batch["denoise_target"]
        length = inputs.shape[1]
        x = decoder.norm(F.embedding(inputs, word) + decoder.positions.weight[:length])
        causal = torch.full((length, length), float("-inf")).triu(1)
        padding = batch["attention_mask"] == 0
        for layer in decoder.layers:  # post-LN: residual, then LayerNorm, after each block
            x = layer.norm1(x + layer.self_attn(x, x, x, attn_mask=causal, need_weights=False)[0])
            x = layer.norm2(x + layer.multihead_attn(x, memory, memory, key_padding_mask=padding,
                                                     need_weights=False)[0])
            x = layer.norm3(x + layer.linear2(F.gelu(layer.linear1(x))))
        logits = x @ word.T + decoder.output.bias
    real = target != -100
    lengths = [len(e["input_ids"]) - 1 for e in _examples(4, seed=7)]
    assert real.sum(1).tolist() == lengths  # body + [SEP] per instance; padding (-100) never counts
    expected = F.cross_entropy(logits[real], target[real])
    assert out.losses["denoise"].item() == pytest.approx(expected.item(), abs=1e-5)
    acc = (logits[real].argmax(-1) == target[real]).float().mean()
    assert out.metrics["denoise_acc"].item() == pytest.approx(acc.item())
    model.train()
    model(**batch).losses["denoise"].backward()
    assert model.bert.embeddings.word.weight.grad is not None


def test_export_drops_the_decoder(tmp_path):
    model = PretrainingModel(CFG, ["denoise"])
    assert any(k.startswith("objectives.denoise.decoder.layers") for k in model.state_dict())
    model.save_pretrained(tmp_path / "alone")
    saved = load_file(tmp_path / "alone" / "model.safetensors")
    assert not any("decoder" in k or "denoise" in k or k.startswith("cls.") for k in saved)
    exported = load(tmp_path / "alone")
    assert type(exported) is BertModel
    encoder = model.bert.state_dict()
    weights = {k: v for k, v in exported.state_dict().items() if not k.startswith("pooler.")}  # none was trained
    assert weights.keys() == encoder.keys()
    for key, value in weights.items():  # the encoder's weights
        assert torch.equal(value, encoder[key])
    PretrainingModel(CFG, ["denoise", "mlm"]).save_pretrained(tmp_path / "mlm")
    assert type(load(tmp_path / "mlm")).__name__ == "BertForMaskedLM"


def test_refuses_albert_and_pair_formats():
    albert = AlbertConfig(vocab_size=100, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                          intermediate_size=48, max_position_embeddings=64, embedding_size=16)
    encoder = AlbertModel(albert, add_pooling_layer=False)
    with pytest.raises(ConfigError, match=r"objective 'denoise' ties .* hidden size \(32\).* 16 wide"):
        Denoising.check_run("denoise", DenoiseOptions(), RunFacts("doc_sentences", 64, None, encoder))
    with pytest.raises(ConfigError, match="objective 'denoise'.*ALBERT"):
        PretrainingModel(albert, ["denoise"])
    bert = BertModel(CFG, add_pooling_layer=False)
    Denoising.check_run("denoise", DenoiseOptions(), RunFacts("full_sentences", 64, None, bert))
    for fmt in ("segment_pair", "sentence_pair"):
        with pytest.raises(ConfigError, match="objective 'denoise'.*doc_sentences or full_sentences"):
            Denoising.check_run("denoise", DenoiseOptions(), RunFacts(fmt, 64, None, bert))
    with pytest.raises(ConfigError, match="decoder_layers"):
        load_config("bart-denoise", ["corpus=x", "tokenizer=y", "objective_options.denoise.decoder_layers=0"])


# ------------------------------------------------------------------------------------------ end to end
@pytest.fixture(scope="module")
def chinese(people_daily_300):
    """The shared small People's Daily corpus (tests/objectives/conftest.py)."""
    return people_daily_300


def _overrides(root, run, steps=4):
    return tiny_overrides(root, run, steps, log_every=1)


def test_bart_recipe_trains_and_exports_the_encoder(chinese, tmp_path):
    run = tmp_path / "bart"
    pretraining = Pretraining.build(load_config("bart-denoise", _overrides(chinese, run)))
    assert pretraining.collator.masker is None  # no masker: the masking section is ignored
    result = pretraining.run()
    assert result.step == 4
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    train = [r for r in rows if r["split"] == "train"]
    assert train and all(np.isfinite(r["loss/denoise"]) and np.isfinite(r["loss"]) for r in train)
    assert type(load(run / "model")) is BertModel  # the decoder stays behind
    with pytest.raises(ConfigError, match="objective 'denoise'.*ALBERT"):
        Pretraining.build(load_config("bart-denoise", _overrides(chinese, tmp_path / "albert")
                                      + ["model.family=albert", "model.embedding_size=32"]))
    with pytest.raises(ConfigError, match="objective 'denoise'.*doc_sentences or full_sentences"):
        Pretraining.build(load_config("bart-denoise", _overrides(chinese, tmp_path / "pair")
                                      + ["data.format=segment_pair"]))
