"""Embedding scores against hand-computed examples: Spearman with tied ranks, accuracy@k and MRR, and that
mean pooling reads only a text's own tokens."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from bertology import BertConfig, BertModel
from bertology.analysis.embeddings_eval import (
    cosine_matrix,
    embed_texts,
    paired_cosines,
    retrieval_scores,
    similarity_spearman,
)
from bertology.tokenization import Tokenizer


def _at_cosine(c: float) -> list[float]:
    return [c, math.sqrt(1 - c * c)]


def test_spearman_of_cosines_with_ties_by_hand():
    a = np.array([[1.0, 0.0]] * 4)
    b = np.array([_at_cosine(c) for c in (0.9, 0.1, 0.5, 0.5)]) * np.array([[2.0], [3.0], [1.0], [1.0]])
    assert paired_cosines(a, b) == pytest.approx([0.9, 0.1, 0.5, 0.5])  # the length of a vector does not count
    # average ranks: cosines [4, 1, 2.5, 2.5], scores [3, 2, 1, 2] -> [4, 2.5, 1, 2.5];
    # deviations [1.5, -1.5, 0, 0] and [1.5, 0, -1.5, 0]: rho = 2.25 / sqrt(4.5 * 4.5) = 0.5
    assert similarity_spearman(a, b, [3, 2, 1, 2]) == pytest.approx(0.5)
    assert similarity_spearman(a, b, [9, 0, 5, 5]) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="scores"):
        similarity_spearman(a, b, [1, 2])


def test_retrieval_accuracy_and_mrr_by_hand():
    queries = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    candidates = np.array([[1.0, 0.1], [0.0, 1.0], [-1.0, 0.0]])
    # q0 -> c0 ranks 1; q1 -> c2 (cos 0) is beaten by c1 (1) and c0 (0.0995): rank 3;
    # q2 -> c1 (0.707) is beaten by c0 (0.774): rank 2
    scores = retrieval_scores(queries, candidates, [0, 2, 1], ks=(1, 2, 3))
    assert scores == pytest.approx({"acc@1": 1 / 3, "acc@2": 2 / 3, "acc@3": 1.0, "mrr": (1 + 1 / 3 + 1 / 2) / 3})
    assert cosine_matrix(queries, candidates)[2, 0] == pytest.approx(1.1 / (math.sqrt(2) * math.sqrt(1.01)))
    # a candidate tied with the gold one does not push it down
    assert retrieval_scores(np.array([[1.0, 0.0]]), np.array([[1.0, 0.0], [2.0, 0.0]]), [1])["acc@1"] == 1.0
    with pytest.raises(ValueError, match="gold"):
        retrieval_scores(queries, candidates, [0, 1, 3])


def test_embed_texts_pools_only_each_texts_tokens(tmp_path):
    words = "the cat sat on a mat dog".split()
    (tmp_path / "vocab.txt").write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *words]) + "\n")
    tok = Tokenizer.from_pretrained(tmp_path / "vocab.txt")
    torch.manual_seed(0)
    model = BertModel(BertConfig(vocab_size=12, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                                 intermediate_size=64, max_position_embeddings=32))
    texts = ["the cat", "the dog sat on a mat mat mat"]
    for pooling in ("mean", "cls"):
        together = embed_texts(model, tok, texts, pooling=pooling)
        alone = embed_texts(model, tok, texts[:1], pooling=pooling)
        assert together.shape == (2, 32) and np.allclose(together[0], alone[0], atol=1e-5)
    ids = tok(["the cat"], return_tensors="pt")
    with torch.no_grad():
        hidden = model.eval()(ids["input_ids"]).last_hidden_state[0]
    model.train()
    assert np.allclose(embed_texts(model, tok, ["the cat"])[0], hidden.mean(0).numpy(), atol=1e-5)
    assert model.training  # put back as it was
