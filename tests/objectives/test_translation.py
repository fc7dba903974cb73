"""Translation language modelling (XLM's TLM): language ids, restarted positions, masks on both sides, the loss
by hand, the run checks, and the xlm-tlm recipe end to end on a small synthetic parallel corpus."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import bertology.objectives.translation  # noqa: F401  (registers `tlm`)
from bertology.data import TokenCorpus, prepare_corpus
from bertology.errors import ConfigError
from bertology.objectives import PretrainingModel
from bertology.objectives.translation import RestartPositions, restarted_positions
from bertology.runs.pretrain import Pretraining, load_config
from bertology.tokenization import Tokenizer

WORDS = ("the cat dog sees a small big red house tree runs eats old new green blue bird fish swims "
         "flies sleeps under over near far happy sad").split()


def _pairs(n: int, seed: int = 0) -> list[tuple[str, str]]:
    """English-like word strings and a made-up second language (each word reversed, plus "o")."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        words = [WORDS[i] for i in rng.integers(0, len(WORDS), int(rng.integers(3, 12)))]
        out.append((" ".join(words) + ".", " ".join(w[::-1] + "o" for w in words) + "."))
    return out


@pytest.fixture(scope="module")
def parallel(tmp_path_factory):
    """A parallel corpus (TSV, en -> xx), the same text as a plain corpus, and a tokenizer for both."""
    root = tmp_path_factory.mktemp("tlm")
    pairs = _pairs(160)
    tok = Tokenizer.train(iter([s for p in pairs for s in p]), vocab_size=300, limit_alphabet=100, min_frequency=1)
    tok.save_pretrained(root / "tok")
    (root / "pairs.tsv").write_text("".join(f"{a}\t{b}\n" for a, b in pairs), encoding="utf-8")
    prepare_corpus([root / "pairs.tsv"], root / "corpus", tok, input_format="parallel", languages=["en", "xx"],
                   progress=False, workers=1)
    (root / "mono.txt").write_text("".join(f"{a} {b}\n\n" for a, b in pairs), encoding="utf-8")
    prepare_corpus([root / "mono.txt"], root / "mono", tok, progress=False, workers=1)
    return root


def _overrides(root, run, steps=4, corpus="corpus"):
    return [f"corpus={root / corpus}", f"tokenizer={root / 'tok'}", f"run_dir={run}",
            "model.preset=tiny", "model.hidden_size=32", "model.num_attention_heads=2",
            "model.intermediate_size=64", "data.max_length=32", "data.eval_fraction=0.05",
            f"train.max_steps={steps}", "train.batch_size=8", "train.eval_every=2", "train.save_every=0",
            "train.log_every=1", "train.progress=false", "train.bf16=false"]


@pytest.fixture(scope="module")
def built(parallel, tmp_path_factory):
    return Pretraining.build(load_config("xlm-tlm", _overrides(parallel, tmp_path_factory.mktemp("run"))))


def test_restarted_positions_count_within_each_language():
    assert restarted_positions(np.array([0, 0, 0, 1, 1, 1, 1])).tolist() == [0, 1, 2, 0, 1, 2, 3]
    assert restarted_positions(np.array([0, 0])).tolist() == [0, 1] and restarted_positions(np.array([])).size == 0
    item = {"token_type_ids": np.array([0, 0, 1, 1, 1])}
    a = RestartPositions()(dict(item), np.random.default_rng(0))
    b = RestartPositions()(dict(item), np.random.default_rng(99))
    assert a["position_ids"].tolist() == b["position_ids"].tolist() == [0, 1, 0, 1, 2]  # no randomness


def test_instances_are_pairs_with_language_ids_and_restarted_positions(built, parallel):
    corpus = TokenCorpus(parallel / "corpus")
    tok = built.tokenizer
    data, collator = built.train_set, built.collator
    batch = collator([data[i] for i in range(6)], epoch=0)
    assert "position_ids" in batch
    for r in range(6):
        doc = int(data.documents[r])
        src, tgt = (corpus.sentence(s).tolist() for s in corpus.document_sentences(doc))
        n, m = len(src), len(tgt)
        real = int(batch["attention_mask"][r].sum())
        assert real == n + m + 3  # short pairs: nothing truncated at max_length 32
        original = data[r]["input_ids"].tolist()
        assert original == [tok.cls_token_id, *src, tok.sep_token_id, *tgt, tok.sep_token_id]
        # language ids: 0 for [CLS] and the source, 1 for the [SEP] opening the target, the target, the last [SEP]
        assert batch["token_type_ids"][r, :real].tolist() == [0] * (n + 1) + [1] * (m + 2)
        # positions: [CLS] 0, source 1..n; middle [SEP] 0, target 1..m, last [SEP] m+1; padding 0
        assert batch["position_ids"][r].tolist() == [*range(n + 1), *range(m + 2)] + [0] * (batch["input_ids"].shape[1]
                                                                                              - real)


def test_masks_fall_on_both_sides_at_the_rate(built):
    """Every instance over three epochs: the masked share of each side is what choosing budget(n) of the n
    maskable tokens uniformly gives (about 0.15), within four standard deviations."""
    data, collator = built.train_set, built.collator
    counts = {0: [0, 0.0, 0.0, 0], 1: [0, 0.0, 0.0, 0]}  # side: masked, expected, variance bound, tokens
    for epoch in range(3):
        for i in range(len(data)):
            item = collator.instance(data[i], epoch)
            maskable = item["maskable"]
            picked = (item["labels"] != -100) & maskable
            assert picked.sum() == (item["labels"] != -100).sum()  # never a special token
            n = int(maskable.sum())
            p = collator.masker.budget(n) / n
            for side in (0, 1):
                on_side = maskable & (item["token_type_ids"] == side)
                counts[side][0] += int(picked[on_side].sum())
                counts[side][1] += p * on_side.sum()
                counts[side][2] += p * (1 - p) * on_side.sum()
                counts[side][3] += int(on_side.sum())
    for side in (0, 1):
        masked, expected, variance, tokens = counts[side]
        assert abs(masked - expected) < 4 * math.sqrt(variance), (side, masked, expected)
        assert 0.13 < masked / tokens < 0.19


def test_masks_are_reproducible_per_seed_epoch_and_index(built):
    data, collator = built.train_set, built.collator
    first = collator.instance(data[3], 1)
    again = collator.instance(data[3], 1)
    other = [collator.instance(data[3], e) for e in (0, 2, 3)]
    assert np.array_equal(first["input_ids"], again["input_ids"]) and np.array_equal(first["labels"], again["labels"])
    assert any(not np.array_equal(first["labels"], o["labels"]) for o in other)
    assert all(np.array_equal(first["position_ids"], o["position_ids"]) for o in other)  # positions never vary


def test_loss_by_hand_at_the_masked_positions_of_both_sides(built):
    model = built.model.eval()
    batch = built.collator([built.train_set[i] for i in range(8)], epoch=0)
    labels = batch["labels"]
    keep = labels != -100
    assert keep[batch["token_type_ids"] == 0].any() and keep[batch["token_type_ids"] == 1].any()
    with torch.no_grad():
        out = model(**batch)
        hidden = model.bert(batch["input_ids"], batch["attention_mask"], batch["token_type_ids"],
                            batch["position_ids"]).last_hidden_state
        head = model.objectives["tlm"].head
        h = head.norm(F.gelu(hidden @ head.transform.weight.T + head.transform.bias))
        logits = h @ model.bert.embeddings.word.weight.T + head.decoder.bias  # the decoder tied to the embeddings
        log_probs = torch.log_softmax(logits, dim=-1)
        nll = -log_probs[keep].gather(1, labels[keep].unsqueeze(1)).squeeze(1)
        accuracy = (logits[keep].argmax(-1) == labels[keep]).float().mean()
        # the restarted positions reach the encoder: without them the hidden states differ
        plain = model.bert(batch["input_ids"], batch["attention_mask"], batch["token_type_ids"]).last_hidden_state
    assert set(out.losses) == {"tlm"}
    assert out.losses["tlm"].item() == pytest.approx(nll.mean().item(), abs=1e-5)
    assert out.metrics["tlm_acc"].item() == pytest.approx(accuracy.item())
    assert not torch.allclose(plain[keep], hidden[keep])


def test_positions_follow_the_family_convention_of_roberta():
    from bertology.models.roberta import RobertaConfig

    config = RobertaConfig(vocab_size=40, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                           intermediate_size=32, max_position_embeddings=40, type_vocab_size=2, pad_token_id=1)
    model = PretrainingModel(config, ["tlm"])
    ids = torch.tensor([[5, 6, 7, 8, 9, 1], [5, 6, 7, 8, 1, 1]])
    mask = (ids != 1).long()
    positions = torch.tensor([[0, 1, 0, 1, 2, 0], [0, 1, 0, 1, 0, 0]])
    batch = model.objectives["tlm"].prepare(model, {"input_ids": ids, "attention_mask": mask,
                                                    "position_ids": positions})
    # real tokens count after the padding index (1): restarted at 2; padding keeps the padding index
    assert batch["position_ids"].tolist() == [[2, 3, 2, 3, 4, 1], [2, 3, 2, 3, 1, 1]]


def test_run_checks_refuse_what_tlm_cannot_read_before_training(parallel, tmp_path):
    with pytest.raises(ConfigError) as err:
        Pretraining.build(load_config("xlm-tlm", _overrides(parallel, tmp_path / "a", corpus="mono")))
    assert str(err.value) == ("objective 'tlm' needs parallel text: prepare the corpus with "
                              "--input-format parallel")
    with pytest.raises(ConfigError, match=r"objective 'tlm' needs a language embedding .* 2 languages \(en, xx\).*"
                                          r"type_vocab_size to at least 2 \(this model has 1\)"):
        Pretraining.build(load_config("xlm-tlm", _overrides(parallel, tmp_path / "b") + ["model.type_vocab_size=1"]))
    with pytest.raises(ConfigError, match="objective 'tlm' needs data.format 'parallel'.*not 'doc_sentences'"):
        Pretraining.build(load_config("xlm-tlm", _overrides(parallel, tmp_path / "c") + ["data.format=doc_sentences"]))
    with pytest.raises(ConfigError, match="'tlm' cannot be combined with 'mlm'"):
        load_config("xlm-tlm", _overrides(parallel, tmp_path / "d") + ["objectives={tlm: 1.0, mlm: 1.0}"])
    assert not any((tmp_path / x / "metrics.jsonl").exists() for x in "abcd")


def test_xlm_tlm_recipe_trains_a_few_steps(parallel, tmp_path):
    run = tmp_path / "run"
    config = load_config("xlm-tlm", _overrides(parallel, run))
    assert config.data.format == "parallel" and list(config.objectives) == ["tlm"]
    result = Pretraining.build(config).run()
    assert result.step == 4 and result.stopped == "finished"
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    train = [r for r in rows if r["split"] == "train"]
    assert len(train) == 4 and all(math.isfinite(r["loss/tlm"]) and 0 <= r["tlm_acc"] <= 1 for r in train)
    assert [r["step"] for r in rows if r["split"] == "eval"] == [2, 4]
    assert all(math.isfinite(r["eval/loss/tlm"]) for r in rows if r["split"] == "eval")
    assert (run / "model" / "config.json").is_file()  # exported (the encoder; see the module doc)
