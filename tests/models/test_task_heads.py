"""Fine-tuning heads against transformers: same logits and losses, both directions of save and load."""

from __future__ import annotations

import pytest
import torch
import transformers

from bertology import (
    BertForQuestionAnswering,
    BertForSequenceClassification,
    BertForTokenClassification,
    load,
)
from bertology.errors import ConfigError

# The sizes transformers' config needs to mirror ours.
SIZES = ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size",
         "max_position_embeddings")


def _inputs(cfg):
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(3, cfg.vocab_size, (3, 13), generator=g)
    mask = torch.ones_like(ids)
    mask[1, 8:] = 0
    return ids, mask, g


def _noise(model):
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=g) * 0.05)
    return model


@pytest.mark.parametrize("labels,kind", [(1, None), (4, None), (4, "multi_label_classification")])
def test_sequence_classification_matches_transformers(tmp_path, tiny_config, labels, kind):
    cfg = tiny_config.with_labels(labels).replace(problem_type=kind)
    torch.manual_seed(0)
    ours = _noise(BertForSequenceClassification(cfg)).eval()
    ours.save_pretrained(tmp_path)
    ref = transformers.BertForSequenceClassification.from_pretrained(tmp_path).eval()
    assert ref.config.num_labels == labels
    ids, mask, g = _inputs(cfg)
    if labels == 1:
        target = torch.randn(3, generator=g)
    elif kind:
        target = (torch.rand(3, labels, generator=g) > 0.5).float()
    else:
        target = torch.randint(0, labels, (3,), generator=g)
    with torch.no_grad():
        a = ours(ids, mask, labels=target)
        b = ref(ids, attention_mask=mask, labels=target)
    torch.testing.assert_close(a.logits, b.logits, atol=1e-5, rtol=0)
    assert a.loss.item() == pytest.approx(b.loss.item(), abs=1e-5)
    assert type(load(tmp_path)) is BertForSequenceClassification


def test_token_classification_and_qa_both_directions(tmp_path, tiny_config):
    ids, mask, g = _inputs(tiny_config)
    hf_cfg = transformers.BertConfig(**{k: getattr(tiny_config, k) for k in SIZES}, num_labels=5)
    torch.manual_seed(0)
    ref = _noise(transformers.BertForTokenClassification(hf_cfg)).eval()
    ref.save_pretrained(tmp_path / "tok")
    ours = BertForTokenClassification.from_pretrained(tmp_path / "tok", strict=True)
    tags = torch.randint(0, 5, (3, 13), generator=g).masked_fill(mask == 0, -100)
    with torch.no_grad():
        a, b = ours(ids, mask, labels=tags), ref(ids, attention_mask=mask, labels=tags)
    real = mask.bool()  # the default call packs real tokens: padded positions are not transformers' there
    torch.testing.assert_close(a.logits[real], b.logits[real], atol=1e-5, rtol=0)
    assert a.loss.item() == pytest.approx(b.loss.item(), abs=1e-5)

    qa = _noise(BertForQuestionAnswering(tiny_config)).eval()
    qa.save_pretrained(tmp_path / "qa")
    ref_qa = transformers.BertForQuestionAnswering.from_pretrained(tmp_path / "qa").eval()
    start, end = torch.tensor([2, 5, 40]), torch.tensor([4, 7, 41])  # the last answer was cut off
    with torch.no_grad():
        a = qa(ids, mask, start_positions=start, end_positions=end)
        b = ref_qa(ids, attention_mask=mask, start_positions=start, end_positions=end)
    torch.testing.assert_close(a.start_logits, b.start_logits, atol=1e-5, rtol=0)
    torch.testing.assert_close(a.end_logits, b.end_logits, atol=1e-5, rtol=0)
    assert a.loss.item() == pytest.approx(b.loss.item(), abs=1e-5)


def test_label_names_round_trip_and_bad_problem_type(tmp_path, tiny_config):
    cfg = tiny_config.with_labels(["neg", "pos"])
    BertForSequenceClassification(cfg).save_pretrained(tmp_path)
    ref = transformers.AutoConfig.from_pretrained(tmp_path)
    assert ref.id2label == {0: "neg", 1: "pos"} and ref.label2id == {"neg": 0, "pos": 1}
    assert load(tmp_path).config.id2label == {"0": "neg", "1": "pos"}
    with pytest.raises(ConfigError, match="problem_type"):
        tiny_config.replace(problem_type="ranking")
