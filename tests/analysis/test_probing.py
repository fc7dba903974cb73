"""Probing classifiers: chance on random representations, control tasks and selectivity on hand-made data,
and word representations pooled from the right pieces of the right layer."""

from __future__ import annotations

from collections import Counter

import pytest
import torch

from bertology import BertConfig, BertModel, Tokenizer
from bertology.analysis.probing import ProbeOptions, control_labels, probe_layers, selectivity, train_probe
from bertology.analysis.representations import WordRepresentations, word_representations
from bertology.assets import minilm_dir
from bertology.errors import ConfigError

QUICK = ProbeOptions(epochs=30, learning_rate=1e-2, patience=5, batch_size=64)


def _splits(n: int) -> list[str]:
    return ["train" if i % 5 < 3 else "dev" if i % 5 == 3 else "test" for i in range(n)]


def test_a_probe_on_random_representations_scores_at_chance():
    g = torch.Generator().manual_seed(0)
    n, classes = 2000, 4
    x = torch.randn(n, 32, generator=g)
    labels = [str(int(v)) for v in torch.randint(0, classes, (n,), generator=g)]
    words = [f"w{i}" for i in range(n)]
    (result,) = probe_layers([x], words, labels, _splits(n), "linear", QUICK, control=False)
    assert abs(result.accuracy - 1 / classes) < 0.05  # 400 test rows: chance is 0.25 +- 0.02 (1 sd)


def test_selectivity_separates_reading_a_property_from_memorising_words():
    """Labels follow a property of each word type. Representations that hold the word's identity (one-hot of
    its type) let a probe learn the task and the control task alike: selectivity near 0. Representations that
    hold the property (one-hot of the label) and not the identity: the control task is at chance, selectivity
    high."""
    g = torch.Generator().manual_seed(1)
    types, classes, n = 40, 4, 3000
    type_label = torch.randint(0, classes, (types,), generator=g)
    word_ids = torch.randint(0, types, (n,), generator=g)
    words = [f"t{int(i)}" for i in word_ids]
    labels = [str(int(type_label[i])) for i in word_ids]
    identity = torch.nn.functional.one_hot(word_ids, types).float()
    property_only = torch.nn.functional.one_hot(type_label[word_ids], classes).float()
    memoriser, reader = probe_layers([identity, property_only], words, labels, _splits(n), "linear", QUICK)
    assert memoriser.accuracy > 0.99 and reader.accuracy > 0.99
    assert memoriser.control_accuracy > 0.95 and memoriser.selectivity < 0.05
    assert reader.control_accuracy < 0.6 and reader.selectivity > 0.4
    assert selectivity(0.9, 0.6) == pytest.approx(0.3)


def test_control_labels_are_fixed_per_type_and_follow_the_label_distribution():
    train = ["NN"] * 600 + ["VB"] * 300 + ["JJ"] * 100
    vocabulary = [f"w{i}" for i in range(3000)]
    mapping = control_labels(vocabulary, train, seed=3)
    assert mapping == control_labels(list(reversed(vocabulary)), train, seed=3)  # order does not matter
    shares = Counter(mapping.values())
    for label, expected in (("NN", 0.6), ("VB", 0.3), ("JJ", 0.1)):
        assert abs(shares[label] / len(vocabulary) - expected) < 0.03  # 3000 draws: sd <= 0.009


def test_train_probe_is_deterministic():
    g = torch.Generator().manual_seed(2)
    x, y = torch.randn(200, 8, generator=g), torch.randint(0, 3, (200,), generator=g)
    a, _ = train_probe("mlp", x, y, x, y, 3, ProbeOptions(epochs=3, hidden=16))
    b, _ = train_probe("mlp", x, y, x, y, 3, ProbeOptions(epochs=3, hidden=16))
    for p, q in zip(a.parameters(), b.parameters(), strict=True):
        torch.testing.assert_close(p, q)
    with pytest.raises(ConfigError, match="unknown probe 'linearr'"):
        train_probe("linearr", x, y, x, y, 3)


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    tok = Tokenizer.from_pretrained(minilm_dir())
    model = BertModel(BertConfig(vocab_size=tok.vocab_size, hidden_size=32, num_hidden_layers=2,
                                 num_attention_heads=4, intermediate_size=64, max_position_embeddings=16)).eval()
    return model, tok


def test_word_representations_pool_the_right_pieces(tiny, tmp_path):
    model, tok = tiny
    sentences = [["photosynthesis", "is", "green"], ["a", "dog"]]
    for pooling in ("first", "mean"):
        reps = word_representations(model, tok, sentences, pooling=pooling, batch_size=1)
        assert reps.num_layers == 3 and reps.offsets == [0, 3, 5] and reps.kept == [3, 2]
        ids = [tok.cls_token_id]
        spans = []
        for word in sentences[0]:
            pieces = tok.backend.encode(word, add_special_tokens=False).ids
            spans.append((len(ids), len(ids) + len(pieces)))
            ids += pieces
        assert spans[0][1] - spans[0][0] > 1  # "photosynthesis" has several pieces
        ids.append(tok.sep_token_id)
        with torch.no_grad():
            hidden = model(torch.tensor([ids]), output_hidden_states=True).hidden_states
        for layer in range(3):
            expected = torch.stack([hidden[layer][0, a] if pooling == "first" else hidden[layer][0, a:b].mean(0)
                                    for a, b in spans])
            torch.testing.assert_close(reps.sentence(layer, 0), expected, rtol=1e-5, atol=1e-5)
    reps.save(tmp_path / "reps.safetensors")
    again = WordRepresentations.load(tmp_path / "reps.safetensors")
    assert again.offsets == reps.offsets and again.pooling == "mean"
    torch.testing.assert_close(again.layers[2], reps.layers[2])
    with pytest.raises(ConfigError, match="layer 5 does not exist: the representations hold layers 0..2"):
        reps.layer(5)


def test_a_long_sentence_keeps_its_first_words(tiny):
    model, tok = tiny
    reps = word_representations(model, tok, [["word"] * 40])
    assert reps.kept == [14] and reps.layers[0].shape[0] == 14  # 16 positions: [CLS] + 14 words + [SEP]
