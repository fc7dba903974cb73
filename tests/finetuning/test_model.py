"""TaskModel: heads on any layer strategy and pooling, the cached (frozen) path, multiple choice, saving."""

from __future__ import annotations

import pytest
import torch

from bertology import BertConfig, BertModel
from bertology.errors import ConfigError
from bertology.finetuning.metrics import accuracy, macro_f1, pearson, spearman
from bertology.finetuning.model import HeadConfig, TaskModel
from bertology.models.task_heads import BertForSequenceClassification

CONFIG = dict(vocab_size=50, hidden_size=16, num_hidden_layers=4, num_attention_heads=2, intermediate_size=32,
              max_position_embeddings=32, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)


def encoder(seed: int = 0) -> BertModel:
    torch.manual_seed(seed)
    return BertModel(BertConfig(**CONFIG)).eval()


def batch(seed: int = 1, rows: int = 3, seq: int = 7) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    ids = torch.randint(1, 50, (rows, seq), generator=gen)
    mask = torch.ones(rows, seq, dtype=torch.long)
    mask[1, 4:] = 0
    ids[1, 4:] = 0
    return {"input_ids": ids, "attention_mask": mask}


def test_pooler_head_matches_bert_for_sequence_classification():
    enc = encoder()
    model = TaskModel(enc, {"t": HeadConfig(labels=["a", "b", "c"], dropout=0.0)}).eval()
    reference = BertForSequenceClassification(BertConfig(**CONFIG).with_labels(3)).eval()
    reference.bert.load_state_dict(enc.state_dict())
    reference.classifier.load_state_dict(model.heads["t"].linear.state_dict())
    inputs = batch()
    ours = model(**inputs).outputs["logits"]
    theirs = reference(**inputs).logits
    torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=0)


@pytest.mark.parametrize("pooling", ["cls", "mean", "max"])
def test_pooling_by_hand(pooling):
    enc = encoder()
    model = TaskModel(enc, {"t": HeadConfig(labels=["a", "b"], layers="layer", layer=2, pooling=pooling,
                                            dropout=0.0)}).eval()
    inputs = batch()
    hidden = enc(**inputs, output_hidden_states=True).hidden_states[2]
    mask = inputs["attention_mask"].bool()
    rows = []
    for i in range(hidden.shape[0]):
        real = hidden[i][mask[i]]
        rows.append({"cls": real[0], "mean": real.mean(0), "max": real.max(0).values}[pooling])
    expected = model.heads["t"].linear(torch.stack(rows))
    torch.testing.assert_close(model(**inputs).outputs["logits"], expected, atol=1e-5, rtol=0)


@pytest.mark.parametrize("layers,pooling", [("top", "auto"), ("scalar_mix", "mean"), ("concat_last_four", "cls"),
                                            ("embeddings", "cls")])
def test_cached_features_give_the_same_logits(layers, pooling):
    enc = encoder()
    model = TaskModel(enc, {"t": HeadConfig(labels=["a", "b"], layers=layers, pooling=pooling, dropout=0.0)}).eval()
    inputs = batch()
    head = model.heads["t"]
    with torch.no_grad():
        hidden = enc(**inputs, output_hidden_states=True).hidden_states
        cached = torch.stack(head.pool_layers(hidden, inputs["attention_mask"]), dim=1)
        direct = model(**inputs).outputs["logits"]
        from_cache = model(cached=cached, attention_mask=inputs["attention_mask"]).outputs["logits"]
    torch.testing.assert_close(from_cache, direct, atol=1e-5, rtol=0)


def test_tagging_head_and_loss_ignores_minus_100():
    model = TaskModel(encoder(), {"ner": HeadConfig(kind="tagging", labels=["O", "B-X", "I-X"], dropout=0.0)}).eval()
    inputs = batch()
    labels = torch.full(inputs["input_ids"].shape, -100)
    labels[:, 1] = 1
    labels[0, 2] = 2
    out = model(**inputs, labels=labels)
    logits = out.outputs["logits"]
    keep = labels != -100
    expected = torch.nn.functional.cross_entropy(logits[keep], labels[keep])
    torch.testing.assert_close(out.losses["loss"], expected)
    assert 0.0 <= float(out.metrics["accuracy"]) <= 1.0


def test_multiple_choice_scores_each_choice():
    model = TaskModel(encoder(), {"mc": HeadConfig(kind="multiple_choice", pooling="cls", dropout=0.0)}).eval()
    inputs = batch(rows=6)
    grouped = {k: v.view(2, 3, -1) for k, v in inputs.items()}
    out = model(**grouped, labels=torch.tensor([2, 0]))
    flat = model(**{k: v.view(6, 1, -1) for k, v in inputs.items()}).outputs["logits"].view(2, 3)
    torch.testing.assert_close(out.outputs["logits"], flat, atol=1e-5, rtol=0)
    torch.testing.assert_close(out.losses["loss"], torch.nn.functional.cross_entropy(flat, torch.tensor([2, 0])))


def test_multi_task_names_losses_by_task():
    model = TaskModel(encoder(), {"a": HeadConfig(labels=["x", "y"]), "b": HeadConfig(kind="regression")})
    out = model(**batch(), task="b", labels=torch.tensor([0.5, 1.0, -1.0]))
    assert set(out.losses) == {"b"}
    with pytest.raises(KeyError, match="unknown task 'c'"):
        model(**batch(), task="c")


def test_save_and_load_round_trip(tmp_path):
    model = TaskModel(encoder(), {"t": HeadConfig(labels=["a", "b"], layers="scalar_mix", pooling="mean")}).eval()
    with torch.no_grad():
        model.heads["t"].selector.scalar_mix.scalar_parameters.add_(torch.arange(5.0))
    model.save_pretrained(tmp_path / "m")
    again = TaskModel.from_pretrained(tmp_path / "m").eval()
    inputs = batch()
    torch.testing.assert_close(again(**inputs).outputs["logits"], model(**inputs).outputs["logits"])
    assert again.head_configs["t"].labels == ["a", "b"]


def test_encoder_pretrained_without_pooler_round_trips_with_pooling_auto(tmp_path):
    """An encoder pretrained by masked LM alone has no pooler, so pooling 'auto' reads [CLS]; loading the saved
    model must not build a fresh pooler that 'auto' would then read (it did: other logits after a reload)."""
    torch.manual_seed(0)
    bare = BertModel(BertConfig(**CONFIG), add_pooling_layer=False).eval()
    model = TaskModel(bare, {"t": HeadConfig(labels=["a", "b"])}).eval()  # pooling "auto"
    model.save_pretrained(tmp_path / "m")
    again = TaskModel.from_pretrained(tmp_path / "m").eval()
    assert again.encoder.pooler is None
    inputs = batch()
    torch.testing.assert_close(again(**inputs).outputs["logits"], model(**inputs).outputs["logits"])


def test_bad_head_configs_are_named():
    with pytest.raises(ConfigError, match="layers"):
        HeadConfig(labels=["a", "b"], layers="bottom")
    with pytest.raises(ConfigError, match="two labels"):
        HeadConfig(labels=["a"])
    with pytest.raises(ConfigError, match="pooler"):
        TaskModel(encoder(), {"t": HeadConfig(labels=["a", "b"], layers="concat_last_four", pooling="pooler")})


def test_metrics_by_hand():
    assert accuracy([0, 1, 1, 2], [0, 1, 2, 2]) == 0.75
    # class 0: tp1 fp0 fn0 -> 1; class 1: tp1 fp0 fn1 -> 2/3; class 2: tp1 fp1 fn0 -> 2/3
    assert macro_f1([0, 1, 1, 2], [0, 1, 2, 2], 3) == pytest.approx((1 + 2 / 3 + 2 / 3) / 3)
    x, y = [1.0, 2.0, 3.0, 4.0], [2.0, 4.0, 5.0, 4.0]
    mx, my = 2.5, 3.75
    cov = sum((a - mx) * (b - my) for a, b in zip(x, y, strict=True))
    var = (sum((a - mx) ** 2 for a in x) * sum((b - my) ** 2 for b in y)) ** 0.5
    assert pearson(x, y) == pytest.approx(cov / var)
    # ranks of y with the tie shared: [0, 2.5, 1... ] -> y ranks = [0, 1.5, 3, 1.5]
    assert spearman(x, y) == pytest.approx(pearson([0, 1, 2, 3], [0, 1.5, 3, 1.5]))
