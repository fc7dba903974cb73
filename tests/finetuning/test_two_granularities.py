"""AMBERT and ChineseBERT through fine-tuning: AMBERT's heads read both granularities (three classifiers and
the agreement regularizer, computed by hand here), ChineseBERT's batches carry pinyin; both end to end
through `bertology finetune` and `predict` on folders holding their own tokenizers."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from bertology.cli.main import main
from bertology.errors import ConfigError
from bertology.finetuning.model import HeadConfig, TaskModel
from bertology.finetuning.regularization import REGULARIZERS
from bertology.models.ambert import AmbertConfig, AmbertModel, agreement_loss
from bertology.models.chinesebert import ChineseBertConfig, ChineseBertModel
from bertology.tokenization import AmbertTokenizer, ChineseBertTokenizer, Tokenizer
from bertology.tokenization.coarse import CoarseVocabulary

TEXTS = ["这个产品质量很好，我很满意。", "太差了，完全不能用。", "物流很快，包装也不错。", "客服态度恶劣，再也不买了。"]


@pytest.fixture
def ambert(make_tiny_config, tiny_tokenizer):
    torch.manual_seed(0)
    tok = AmbertTokenizer.from_wordpiece(tiny_tokenizer, coarse_vocab=CoarseVocabulary([]))
    words = [w for text in TEXTS for w in _words(tok, text)]
    tok = AmbertTokenizer.from_wordpiece(tiny_tokenizer, coarse_vocab=CoarseVocabulary(sorted(set(words))))
    config = make_tiny_config(AmbertConfig, vocab_size=tiny_tokenizer.vocab_size, coarse_vocab_size=len(tok.coarse_vocab))
    return AmbertModel(config), tok


def _words(tok: AmbertTokenizer, text: str) -> list[tuple[int, ...]]:
    from bertology.tokenization.coarse import words

    ids = tok([text], return_tensors=None)["input_ids"][0]
    starts = tok.word_starts([text])[0]
    return [w for w in words(np.array(ids[1:-1]), np.array(starts[1:-1])) if w]


def _model(encoder) -> TaskModel:
    return TaskModel(encoder, {"s": HeadConfig(kind="classification", labels=["neg", "pos"], pooling="cls")}).eval()


def test_an_ambert_head_reads_both_cls_vectors_and_agrees_by_hand(ambert):
    encoder, tok = ambert
    model = _model(encoder)
    head = model.heads["s"]
    assert head.two_views
    batch = tok(TEXTS, return_tensors="pt")
    labels = torch.tensor([1, 0, 1, 0])
    REGULARIZERS["agreement"](REGULARIZERS.options("agreement", {"weight": 0.7}), "agreement").transform(model)
    out = model(**batch, labels=labels)

    with torch.no_grad():
        enc = encoder(batch["input_ids"], batch["attention_mask"], batch["token_type_ids"],
                      coarse_ids=batch["coarse_ids"], coarse_attention_mask=batch["coarse_attention_mask"],
                      coarse_token_type_ids=batch["coarse_token_type_ids"])
        fine_cls, coarse_cls = enc.last_hidden_state[:, 0], enc.coarse.last_hidden_state[:, 0]
        fine = head.linear(fine_cls)
        coarse = head.coarse_linear(coarse_cls)
        combined = head.combined_linear(torch.cat([fine_cls, coarse_cls], -1))
    torch.testing.assert_close(out.outputs["logits"], combined)  # the combined classifier predicts
    by_hand = (F.cross_entropy(fine, labels) + F.cross_entropy(coarse, labels) + F.cross_entropy(combined, labels)
               + 0.7 * (fine.softmax(-1) - coarse.softmax(-1)).pow(2).sum(-1).mean())
    torch.testing.assert_close(out.losses["loss"], by_hand)
    torch.testing.assert_close(out.losses["loss"], agreement_loss(fine, coarse, combined, labels, 0.7))


def test_without_coarse_inputs_the_fine_classifier_alone_predicts(ambert):
    encoder, tok = ambert
    model = _model(encoder)
    batch = {k: v for k, v in tok(TEXTS, return_tensors="pt").items() if not k.startswith("coarse")}
    with torch.no_grad():
        logits = model(**batch).outputs["logits"]
        cls = encoder(batch["input_ids"], batch["attention_mask"], batch["token_type_ids"]).last_hidden_state[:, 0]
    torch.testing.assert_close(logits, model.heads["s"].linear(cls))


def test_agreement_needs_two_granularities_and_frozen_refuses_them(ambert, tiny_bert, tmp_path):
    with pytest.raises(ConfigError, match="two granularities"):
        REGULARIZERS["agreement"](REGULARIZERS.options("agreement", {}), "agreement").transform(_model(tiny_bert))
    with pytest.raises(ConfigError, match="weight"):
        REGULARIZERS.options("agreement", {"weight": -1}, "regularizers.agreement: ")
    from bertology.finetuning.predict import cache_features

    encoder, tok = ambert
    with pytest.raises(ConfigError, match="frozen"):
        cache_features(_model(encoder), "s", [{}], lambda f: f, progress=False)


def _sentiment_files(tmp_path):
    rows = [{"text": t, "label": label} for t, label in zip(TEXTS * 4, ["pos", "neg", "pos", "neg"] * 4,
                                                              strict=True)]
    (tmp_path / "train.jsonl").write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows),
                                          encoding="utf-8")
    (tmp_path / "dev.jsonl").write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows[:4]),
                                        encoding="utf-8")


def _finetune(tmp_path, folder, extra: str = "") -> dict:
    _sentiment_files(tmp_path)
    (tmp_path / "ft.yaml").write_text(
        f"model: {folder}\nrun_dir: {tmp_path / 'run'}\n{extra}tasks:\n  s:\n    kind: classification\n"
        "    train: train.jsonl\n    dev: dev.jsonl\n    max_length: 32\n    head: {pooling: cls}\n"
        "train: {max_steps: 3, batch_size: 4, log_every: 1, progress: false, plot: false, bf16: false}\n",
        encoding="utf-8")
    assert main(["finetune", str(tmp_path / "ft.yaml")]) == 0
    assert main(["predict", str(tmp_path / "run" / "model"), str(tmp_path / "dev.jsonl"),
                 "-o", str(tmp_path / "p.jsonl")]) == 0
    predictions = [json.loads(line) for line in (tmp_path / "p.jsonl").read_text().splitlines()]
    assert len(predictions) == 4 and {p["prediction"] for p in predictions} <= {"pos", "neg"}
    return json.loads((tmp_path / "run" / "results.json").read_text())[0]


def test_ambert_fine_tunes_through_the_command_line(ambert, tmp_path):
    encoder, tok = ambert
    encoder.save_pretrained(tmp_path / "ambert")
    tok.save_pretrained(tmp_path / "ambert")
    assert isinstance(Tokenizer.from_pretrained(tmp_path / "ambert"), AmbertTokenizer)
    _finetune(tmp_path, tmp_path / "ambert", "regularizers: {agreement: {weight: 1.0}}\n")
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert any("agreement_gap" in r for r in rows if r.get("split") == "train")


def test_chinesebert_fine_tunes_with_pinyin_through_the_command_line(make_tiny_config, tiny_tokenizer, tmp_path):
    torch.manual_seed(0)
    tok = ChineseBertTokenizer.from_wordpiece(tiny_tokenizer)
    config = make_tiny_config(ChineseBertConfig, vocab_size=tiny_tokenizer.vocab_size, glyph_size=16)
    encoder = ChineseBertModel.for_tokenizer(config, tok, cache_dir=tmp_path / "glyphs")
    encoder.save_pretrained(tmp_path / "cb")
    tok.save_pretrained(tmp_path / "cb")
    seen = {}
    original = ChineseBertModel.forward

    def spy(self, *args, **kwargs):
        seen["pinyin"] = kwargs.get("pinyin_ids")
        return original(self, *args, **kwargs)

    ChineseBertModel.forward = spy
    try:
        _finetune(tmp_path, tmp_path / "cb")
    finally:
        ChineseBertModel.forward = original
    assert seen["pinyin"] is not None and seen["pinyin"].dim() == 3 and int(seen["pinyin"].count_nonzero()) > 0
