"""Attention analysis: statistics exact on hand-built maps, accumulation, head groups, rollout, heatmaps,
and `collect` over a tiny random BERT."""

from __future__ import annotations

import logging
import math
import sys

import pytest
import torch

from bertology import BertModel
from bertology.analysis.attention import (
    STATISTICS,
    AttentionAccumulator,
    AttentionStats,
    attention_heatmaps,
    attention_rollout,
    attention_statistics,
    collect,
    group_heads,
    punctuation_ids,
)
from bertology.errors import ConfigError

CLS, SEP, PAD, COMMA, A, B = 1, 2, 0, 7, 10, 11
SPECIAL = {"cls": CLS, "sep": SEP}


def _hand_built() -> tuple[list[torch.Tensor], torch.Tensor, torch.Tensor]:
    """Batch of 2, seq 4: "[CLS] a , [SEP]" and "[CLS] b [SEP] [PAD]"; 2 layers x 2 heads.

    L0H0 all to [CLS]; L0H1 previous token (position 0 to itself); L1H0 uniform over real tokens; L1H1 self.
    The padding query (sentence 1, position 3) attends somewhere odd, to show it is not counted."""
    input_ids = torch.tensor([[CLS, A, COMMA, SEP], [CLS, B, SEP, PAD]])
    mask = torch.tensor([[1, 1, 1, 1], [1, 1, 1, 0]])
    lengths = [4, 3]
    layer0 = torch.zeros(2, 2, 4, 4)
    layer1 = torch.zeros(2, 2, 4, 4)
    for b, n in enumerate(lengths):
        for q in range(n):
            layer0[b, 0, q, 0] = 1.0
            layer0[b, 1, q, max(q - 1, 0)] = 1.0
            layer1[b, 0, q, :n] = 1.0 / n
            layer1[b, 1, q, q] = 1.0
    for layer in (layer0, layer1):  # the padding query: made-up rows that would change every statistic
        layer[1, :, 3, :] = 0.0
        layer[1, :, 3, 1] = 1.0
    return [layer0, layer1], input_ids, mask


def test_statistics_exact_on_hand_built_maps():
    attentions, input_ids, mask = _hand_built()
    stats = attention_statistics(attentions, input_ids, mask, SPECIAL, punctuation_ids={COMMA})
    assert stats.tokens == 7 and stats.batches == 1
    assert stats.values.shape == (2, 2, len(STATISTICS))
    uniform = (4 * math.log(4) + 3 * math.log(3)) / 7
    expected = {  # entropy, cls, sep, punctuation, previous, next, self
        (0, 0): [0, 1, 0, 0, 2 / 7, 0, 2 / 7],
        (0, 1): [0, 4 / 7, 0, 1 / 7, 5 / 7, 0, 2 / 7],
        (1, 0): [uniform, 2 / 7, 2 / 7, 1 / 7, (3 / 4 + 2 / 3) / 7, (3 / 4 + 2 / 3) / 7, 2 / 7],
        (1, 1): [0, 2 / 7, 2 / 7, 1 / 7, 0, 0, 1],
    }
    for (layer, head), values in expected.items():
        torch.testing.assert_close(stats.values[layer, head], torch.tensor(values, dtype=torch.float64),
                                   msg=f"layer {layer} head {head}")
    assert stats.uniform_entropy == pytest.approx(uniform)
    assert stats.stat("entropy")[1, 0] == pytest.approx(uniform)


def test_padding_keys_carry_no_mass_and_no_mask_means_all_real():
    attentions, input_ids, mask = _hand_built()
    leaky = [a.clone() for a in attentions]
    leaky[1][1, 0, 0, :] = torch.tensor([0.5, 0.0, 0.0, 0.5])  # half of [CLS]'s mass on the padding key
    stats = attention_statistics(leaky, input_ids, mask, SPECIAL)
    base = attention_statistics(attentions, input_ids, mask, SPECIAL)
    # that query had 1/3 on [CLS]; now 0.5, and the padding key's 0.5 counts for nothing
    assert float(stats.stat("cls")[1, 0] - base.stat("cls")[1, 0]) == pytest.approx((0.5 - 1 / 3) / 7)
    everything = attention_statistics(attentions, input_ids, None, SPECIAL)
    assert everything.tokens == 8


def test_accumulating_two_batches_equals_one_batch_of_both():
    torch.manual_seed(0)
    seq, heads = 6, 3

    def batch(n: int) -> tuple[list[torch.Tensor], torch.Tensor, torch.Tensor]:
        lengths = torch.randint(2, seq + 1, (n,))
        mask = (torch.arange(seq)[None] < lengths[:, None]).long()
        ids = torch.randint(3, 12, (n, seq)) * mask
        ids[:, 0] = CLS
        ids[torch.arange(n), lengths - 1] = SEP
        scores = torch.randn(2, n, heads, seq, seq).masked_fill(~mask.bool()[None, :, None, None, :], -1e9)
        return list(scores.softmax(-1)), ids, mask

    first, second = batch(3), batch(4)
    acc = AttentionAccumulator(SPECIAL, {COMMA, 5})
    acc.add(*first)
    acc.add(*second)
    together = attention_statistics([torch.cat([a, b]) for a, b in zip(first[0], second[0], strict=True)],
                                    torch.cat([first[1], second[1]]), torch.cat([first[2], second[2]]),
                                    SPECIAL, {COMMA, 5})
    two = acc.result()
    torch.testing.assert_close(two.values, together.values)
    assert two.tokens == together.tokens == int(first[2].sum() + second[2].sum())
    assert two.batches == 2
    assert two.uniform_entropy == pytest.approx(together.uniform_entropy)


def test_round_trip_table_and_errors():
    attentions, input_ids, mask = _hand_built()
    stats = attention_statistics(attentions, input_ids, mask, SPECIAL, {COMMA})
    again = AttentionStats.from_dict(stats.to_dict())
    torch.testing.assert_close(again.values, stats.values)
    assert (again.tokens, again.batches) == (7, 1)
    table = stats.table()
    assert table.splitlines()[0].split() == ["layer", "head", *STATISTICS]
    assert len(table.splitlines()) == 2 + 4
    assert stats.table(markdown=True).startswith("| layer | head |")
    with pytest.raises(ValueError, match=r"input_ids must be \(batch, seq\) = \(2, 4\)"):
        attention_statistics(attentions, input_ids[:, :3], mask, SPECIAL)
    with pytest.raises(ValueError, match=r"attentions\[1\] has shape"):
        attention_statistics([attentions[0], attentions[1][:, :, :3, :3]], input_ids, mask, SPECIAL)
    with pytest.raises(ValueError, match="attention_mask must be"):
        attention_statistics(attentions, input_ids, mask[:1], SPECIAL)
    with pytest.raises(ConfigError, match="'sep'"):
        AttentionAccumulator({"cls": CLS})
    with pytest.raises(ConfigError, match="unknown attention statistic"):
        stats.stat("entropie")


def _stats_of_patterns(patterns: list[list[float]]) -> AttentionStats:
    """2 layers x 4 heads whose statistic vectors are the given patterns, in order."""
    values = torch.tensor(patterns, dtype=torch.float64).reshape(2, 4, len(STATISTICS))
    return AttentionStats(values, tokens=100, batches=1, uniform_entropy=2.0)


CLS_HEAD = [0.1, 0.9, 0.05, 0.0, 0.02, 0.02, 0.01]
PREV_HEAD = [0.3, 0.05, 0.05, 0.0, 0.85, 0.02, 0.03]
BROAD_HEAD = [1.9, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1]
SEP_HEAD = [0.4, 0.05, 0.8, 0.0, 0.05, 0.05, 0.05]


def test_group_heads_puts_identical_heads_together_and_names_them():
    patterns = [CLS_HEAD, PREV_HEAD, BROAD_HEAD, CLS_HEAD, PREV_HEAD, BROAD_HEAD, SEP_HEAD, CLS_HEAD]
    stats = _stats_of_patterns(patterns)
    groups = group_heads(stats, k=4, seed=3)
    labels = groups.labels.flatten().tolist()
    assert labels[0] == labels[3] == labels[7]
    assert labels[1] == labels[4]
    assert labels[2] == labels[5]
    assert len({labels[0], labels[1], labels[2], labels[6]}) == 4
    assert labels[0] == 0  # numbered in head order
    names = {c.name for c in groups.clusters}
    assert names == {"attends to [CLS]", "previous token", "broad (high entropy)", "attends to [SEP]"}
    cls_group = groups.clusters[labels[0]]
    assert cls_group.heads == [(0, 0), (0, 3), (1, 3)]
    assert cls_group.means["cls"] == pytest.approx(0.9)
    assert "attends to [CLS]" in groups.table() and "0-0 0-3 1-3" in groups.table()
    # deterministic for a seed
    assert group_heads(stats, k=4, seed=3).labels.tolist() == groups.labels.tolist()
    assert group_heads(stats, k=4, seed=3).to_dict() == groups.to_dict()


def test_group_heads_deterministic_on_noisy_heads_and_checks_k():
    torch.manual_seed(1)
    values = torch.rand(2, 4, len(STATISTICS), dtype=torch.float64)
    values[1, 3] = float("nan")  # a pruned head: left out
    stats = AttentionStats(values, tokens=10, batches=1)
    one = group_heads(stats, k=3, seed=7)
    two = group_heads(stats, k=3, seed=7)
    assert one.labels.tolist() == two.labels.tolist()
    assert one.labels[1, 3] == -1
    assert sorted(h for c in one.clusters for h in c.heads) == stats.heads()
    assert len(stats.heads()) == 7
    with pytest.raises(ConfigError, match="k=8 groups for 7 heads"):
        group_heads(stats, k=8)
    with pytest.raises(ConfigError, match="positive integer"):
        group_heads(stats, k=0)


def test_rollout_by_hand_with_padding():
    # layer 0: head 0 all to position 0, head 1 all to position 1 -> mean 1/2 everywhere; + I, renormalise:
    # [[.75, .25], [.25, .75]]. layer 1: both heads all to position 0 -> [[1, 0], [1, 0]]; + I, renormalise:
    # [[1, 0], [.5, .5]].
    # rollout = layer1 @ layer0 = [[.75, .25], [.5, .5]]
    layer0 = torch.tensor([[[1.0, 0.0], [1.0, 0.0]], [[0.0, 1.0], [0.0, 1.0]]])[None]
    layer1 = torch.tensor([[[1.0, 0.0], [1.0, 0.0]], [[1.0, 0.0], [1.0, 0.0]]])[None]
    expected = torch.tensor([[0.75, 0.25], [0.5, 0.5]])
    torch.testing.assert_close(attention_rollout([layer0, layer1])[0], expected)

    # the same sentence padded to 3 in a batch with a full sentence: real block unchanged, padding zero
    def padded(layer: torch.Tensor) -> torch.Tensor:
        out = torch.full((2, 2, 3, 3), 1 / 3)
        out[0] = 0.0
        out[0, :, :2, :2] = layer[0]
        out[0, :, 2, :] = torch.tensor([0.0, 0.0, 1.0])  # the padding query's row: ignored
        return out

    mask = torch.tensor([[1, 1, 0], [1, 1, 1]])
    rollout = attention_rollout([padded(layer0), padded(layer1)], mask)
    assert rollout.shape == (2, 3, 3)
    torch.testing.assert_close(rollout[0, :2, :2], expected)
    assert rollout[0, 2].abs().sum() == 0 and rollout[0, :, 2].abs().sum() == 0
    # uniform U with the residual: ((U + I) / 2)^2 = (3U + I) / 4 as U^2 = U: 1/2 on the diagonal, 1/4 off it
    torch.testing.assert_close(rollout[1], torch.full((3, 3), 0.25) + 0.25 * torch.eye(3))
    torch.testing.assert_close(rollout.sum(-1), mask.float())


def test_heatmap_writes_png(tmp_path, monkeypatch, caplog):
    pytest.importorskip("matplotlib")
    attentions, _, _ = _hand_built()
    one = [a[1] for a in attentions]  # the padded sentence: (heads, seq, seq)
    path = tmp_path / "heads.png"
    assert attention_heatmaps(one, ["[CLS]", "b", "[SEP]"], [(0, 0), (0, 1), (1, 0)], path) is None
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(ValueError, match=r"head \(2, 0\) does not exist"):
        attention_heatmaps(one, ["a"], [(2, 0)], path)
    with pytest.raises(ValueError, match="tokens: 5 given"):
        attention_heatmaps(one, list("abcde"), [(0, 0)], path)
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    other = tmp_path / "none.png"
    with caplog.at_level(logging.WARNING, logger="bertology"):
        why = attention_heatmaps([a[:1] for a in attentions], ["x"], [(1, 1)], other)
    assert why is not None and "matplotlib" in why
    assert "matplotlib" in caplog.text and not other.exists()


def test_punctuation_ids_from_tokenizer(tiny_tokenizer):
    ids = punctuation_ids(tiny_tokenizer)
    vocab = tiny_tokenizer.vocab
    assert ids, "the tiny vocabulary holds punctuation"
    for token, token_id in vocab.items():
        if token_id in ids:
            assert not any(c.isalnum() for c in token.removeprefix("##")), token
    assert tiny_tokenizer.cls_token_id not in ids and tiny_tokenizer.sep_token_id not in ids
    for mark in ("，", "。", ","):
        if mark in vocab:
            assert vocab[mark] in ids


def test_collect_on_tiny_bert(tiny_tokenizer, make_tiny_config):
    torch.manual_seed(0)
    model = BertModel(make_tiny_config(vocab_size=tiny_tokenizer.vocab_size, max_position_embeddings=64))
    model.train()
    texts = ["今天天气很好，我们去公园。", "人民日报。", "经济发展，社会进步，人民生活水平提高。", "好"]
    batches = [tiny_tokenizer(texts[:2]), tiny_tokenizer(texts[2:])]
    stats = collect(model, batches, tokenizer=tiny_tokenizer)
    assert model.training, "collect puts the model back in training mode"
    assert stats.values.shape == (2, 4, len(STATISTICS))
    assert stats.tokens == sum(int(b["attention_mask"].sum()) for b in batches)
    assert stats.batches == 2
    shares = stats.values[..., 1:]
    assert bool(((shares >= 0) & (shares <= 1 + 1e-9)).all())
    # [CLS], [SEP] and punctuation are disjoint sets of keys; previous, next and self are disjoint positions
    assert bool((stats.values[..., 1:4].sum(-1) <= 1 + 1e-9).all())
    assert bool((stats.values[..., 4:7].sum(-1) <= 1 + 1e-9).all())
    longest = max(b["input_ids"].shape[1] for b in batches)
    entropy = stats.stat("entropy")
    assert bool((entropy >= 0).all()) and bool((entropy <= math.log(longest) + 1e-9).all())
    assert bool((entropy <= stats.uniform_entropy + 1e-9).any())
    # every sentence has one [CLS] and one [SEP]: a random model gives them some mass
    assert bool((stats.stat("cls") > 0).all()) and bool((stats.stat("sep") > 0).all())
    assert bool((stats.stat("punctuation") > 0).all())

    # what collect gives is what the statistics of the model's own attentions give
    model.eval()
    acc = AttentionAccumulator({"cls": tiny_tokenizer.cls_token_id, "sep": tiny_tokenizer.sep_token_id},
                               punctuation_ids(tiny_tokenizer))
    with torch.no_grad():
        for batch in batches:
            out = model(batch["input_ids"], batch["attention_mask"], output_attentions=True)
            acc.add(out.attentions, batch["input_ids"], batch["attention_mask"])
    torch.testing.assert_close(acc.result().values, stats.values)

    groups = group_heads(stats, k=3, seed=0)
    assert sorted(set(groups.labels.flatten().tolist())) == [0, 1, 2]
    with pytest.raises(ConfigError, match="needs a tokenizer"):
        collect(model, batches)
