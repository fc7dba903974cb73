"""Pretraining objectives: losses by hand, export to transformers, ELECTRA's mechanics, config errors."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
import transformers

from bertology import BertConfig
from bertology.errors import ConfigError
from bertology.objectives import OBJECTIVES, PretrainingModel

CFG = BertConfig(vocab_size=60, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=48,
                 max_position_embeddings=40, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)


def _batch(seed=0, batch=4, seq=16, pair_classes=2):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(5, 60, (batch, seq), generator=g)
    mask = torch.ones_like(ids)
    mask[1, 12:] = 0
    mask[3, 9:] = 0
    ids = ids.masked_fill(mask == 0, 0)
    labels = torch.full_like(ids, -100)
    pick = (torch.rand(batch, seq, generator=g) < 0.3) & (mask == 1)
    pick[:, 0] = False
    labels[pick] = ids[pick]
    masked = ids.masked_fill(pick, 4)
    types = torch.zeros_like(ids)
    types[:, 8:] = 1
    return {"input_ids": masked, "attention_mask": mask, "token_type_ids": types * mask, "labels": labels,
            "sentence_label": torch.randint(0, pair_classes, (batch,), generator=g),
            "case_labels": torch.where(mask.bool(), torch.randint(0, 5, (batch, seq), generator=g), -100)}


def test_registry_has_every_objective_of_the_issue():
    assert {"mlm", "nsp", "sop", "order", "distance", "capitalization", "rtd", "sbo", "denoise", "simcse", "infoword",
            "tlm", "token_document", "word_order", "sentence_reordering", "pmlm"} <= set(OBJECTIVES)


def test_mlm_and_nsp_match_transformers_after_export(tmp_path):
    torch.manual_seed(0)
    model = PretrainingModel(CFG, ["mlm", "nsp"]).eval()
    batch = _batch()
    with torch.no_grad():
        out = model(**batch)
    model.save_pretrained(tmp_path)
    hf = transformers.BertForPreTraining.from_pretrained(tmp_path).eval()
    with torch.no_grad():
        ref = hf(batch["input_ids"], attention_mask=batch["attention_mask"], token_type_ids=batch["token_type_ids"])
    keep = batch["labels"] != -100
    mlm = F.cross_entropy(ref.prediction_logits[keep], batch["labels"][keep])
    nsp = F.cross_entropy(ref.seq_relationship_logits, batch["sentence_label"])
    assert out.losses["mlm"].item() == pytest.approx(mlm.item(), abs=1e-5)
    assert out.losses["nsp"].item() == pytest.approx(nsp.item(), abs=1e-5)
    acc = (ref.prediction_logits[keep].argmax(-1) == batch["labels"][keep]).float().mean()
    assert out.metrics["mlm_acc"].item() == pytest.approx(acc.item())


def test_mlm_only_exports_a_masked_lm(tmp_path):
    model = PretrainingModel(CFG, ["mlm"])
    assert model.bert.pooler is None  # no unused parameters (DDP would complain)
    model.save_pretrained(tmp_path)
    hf = transformers.AutoModelForMaskedLM.from_pretrained(tmp_path)
    assert type(hf).__name__ == "BertForMaskedLM"


@pytest.mark.parametrize("task,classes", [("sop", 2), ("order", 3), ("distance", 3)])
def test_sentence_tasks_have_their_class_count_and_cross_entropy(task, classes):
    torch.manual_seed(0)
    model = PretrainingModel(CFG, [task]).eval()
    batch = _batch(pair_classes=classes)
    out = model(**batch)
    pooled = model.bert(batch["input_ids"], batch["attention_mask"], batch["token_type_ids"]).pooler_output
    logits = model.objectives[task].head(pooled)
    assert logits.shape == (4, classes)
    assert out.losses[task].item() == pytest.approx(F.cross_entropy(logits, batch["sentence_label"]).item(), abs=1e-6)


def test_capitalization_loss_by_hand():
    torch.manual_seed(0)
    model = PretrainingModel(CFG, ["mlm", "capitalization"]).eval()
    batch = _batch()
    out = model(**batch)
    hidden = model.bert(batch["input_ids"], batch["attention_mask"], batch["token_type_ids"]).last_hidden_state
    keep = batch["case_labels"] != -100
    logits = model.objectives["capitalization"].head(hidden)[keep]
    # log-softmax and the negative log-likelihood written out
    expected = -(logits.log_softmax(-1).gather(1, batch["case_labels"][keep][:, None])).mean()
    assert out.losses["capitalization"].item() == pytest.approx(expected.item(), abs=1e-6)


def test_electra_generator_shares_embeddings_and_labels_replacements():
    torch.manual_seed(0)
    model = PretrainingModel(CFG, ["rtd"], {"rtd": {"generator_layers": 1}})
    rtd = model.objectives["rtd"]
    assert rtd.generator.embeddings is model.bert.embeddings
    assert rtd.generator_head.decoder.weight is model.bert.embeddings.word.weight
    assert len(rtd.generator.encoder.layers) == 1
    names = {id(p) for p in model.parameters()}
    assert len(names) == sum(1 for _ in model.parameters())  # shared tensors counted once
    batch = _batch()
    prepared = rtd.prepare(model, dict(batch))
    masked = batch["labels"] != -100
    unmasked_same = prepared["input_ids"][~masked] == batch["input_ids"][~masked]
    assert unmasked_same.all()
    original = torch.where(masked, batch["labels"], batch["input_ids"])
    assert torch.equal(prepared["rtd_labels"], (prepared["input_ids"] != original).float())
    out = model(**batch)
    assert set(out.losses) == {"generator", "rtd"} and torch.isfinite(out.losses["rtd"])
    out.losses["rtd"].backward()
    assert model.bert.embeddings.word.weight.grad is not None


def test_rtd_options_are_typed_and_checked():
    from bertology.objectives import RtdOptions

    model = PretrainingModel(CFG, ["rtd"], {"rtd": RtdOptions(generator_layers=2, temperature=0.5)})
    assert len(model.objectives["rtd"].generator.encoder.layers) == 2 and model.objectives["rtd"].temperature == 0.5
    default = PretrainingModel(CFG, ["rtd"]).objectives["rtd"]
    assert len(default.generator.encoder.layers) == 1 and default.temperature == 1.0  # a quarter of 2, at least 1
    with pytest.raises(ConfigError, match="objective_options.rtd: unknown field 'generator_layer'; did you mean"):
        PretrainingModel(CFG, ["rtd"], {"rtd": {"generator_layer": 1}})
    with pytest.raises(ConfigError, match="'generator_layers' must be >= 1"):
        RtdOptions(generator_layers=0)
    with pytest.raises(ConfigError, match="'temperature' must be positive"):
        RtdOptions(temperature=0.0)


def test_rtd_discriminator_loss_by_hand():
    torch.manual_seed(0)
    model = PretrainingModel(CFG, ["rtd"]).eval()
    rtd = model.objectives["rtd"]
    batch = rtd.prepare(model, _batch())
    encoded = model.bert(batch["input_ids"], batch["attention_mask"], batch["token_type_ids"])
    losses, metrics = rtd(encoded, batch)
    keep = batch["attention_mask"].bool()
    z = rtd.classifier(F.gelu(rtd.dense(encoded.last_hidden_state[keep]))).squeeze(-1)
    y = batch["rtd_labels"][keep]
    by_hand = -(y * F.logsigmoid(z) + (1 - y) * F.logsigmoid(-z)).mean()
    assert losses["rtd"].item() == pytest.approx(by_hand.item(), abs=1e-6)


def test_objective_combinations_that_make_no_sense_are_refused():
    with pytest.raises(ConfigError, match="unknown objective"):
        PretrainingModel(CFG, ["mlm", "nope"])
    with pytest.raises(ConfigError, match="one sentence-pair objective"):
        PretrainingModel(CFG, ["nsp", "sop"])
    with pytest.raises(ConfigError, match="objective 'rtd' cannot be combined with 'mlm'"):
        PretrainingModel(CFG, ["mlm", "rtd"])
    with pytest.raises(ConfigError, match="did you mean 'mlm'"):
        PretrainingModel(CFG, ["mlmm"])


def test_conflicts_and_needs_are_declared_on_the_objectives():
    assert OBJECTIVES["rtd"].conflicts == ("mlm",)
    assert {n for n, c in OBJECTIVES.items() if c.needs_pooler} >= {"nsp", "sop", "order", "distance",
                                                                     "sentence_reordering"}
    assert OBJECTIVES["sentence_reordering"].conflicts  # its [CLS] label clashes with the pair tasks
    builtin = [n for n in OBJECTIVES if OBJECTIVES[n].__module__.startswith("bertology.")]  # not test plugins
    assert {n for n in builtin if OBJECTIVES.entry(n).options is None} == {
        "mlm", "nsp", "sop", "order", "distance", "capitalization", "token_document"}


def test_rtd_refuses_families_it_cannot_share_embeddings_with():
    from bertology import AlbertConfig, AlbertModel

    cfg = AlbertConfig(vocab_size=60, hidden_size=32, embedding_size=16, num_hidden_layers=2, num_attention_heads=4,
                       intermediate_size=48, max_position_embeddings=40)
    with pytest.raises(ConfigError, match="bert family only"):
        PretrainingModel(cfg, ["rtd"], encoder=AlbertModel(cfg, add_pooling_layer=False))


def test_continued_pretraining_adopts_the_pretrained_heads():
    from bertology import BertForPreTraining

    torch.manual_seed(0)
    full = BertForPreTraining(CFG)
    model = PretrainingModel(CFG, ["mlm", "nsp"], encoder=full.bert)
    assert model.adopt_heads(full) == ["mlm", "nsp"]
    for a, b in ((model.objectives["mlm"].head, full.mlm_head), (model.objectives["nsp"].head, full.sentence_head)):
        for (name, p), q in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
            assert torch.equal(p, q), name
