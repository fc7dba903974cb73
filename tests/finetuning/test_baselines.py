"""The TF-IDF + logistic regression baseline: features by hand, and a fit that separates what is separable."""

from __future__ import annotations

import math

import pytest
import torch

from bertology.finetuning.baselines import TfidfLogistic


def test_features_are_sublinear_tf_times_smoothed_idf_normalised_with_a_bias_column():
    model = TfidfLogistic(ngrams=(1, 1), min_count=1).fit(["aab", "b"], ["x", "y"])
    assert model.vocabulary == {"a": 0, "b": 1}
    idf_a, idf_b = math.log(3 / 2) + 1, math.log(3 / 3) + 1  # a in one of two texts, b in both
    row = [(1 + math.log(2)) * idf_a, 1 * idf_b]
    norm = math.hypot(*row)
    features = model._features(["aab"]).to_dense()[0]
    assert features.tolist() == pytest.approx([row[0] / norm, row[1] / norm, 1.0])


def test_fit_separates_and_is_deterministic():
    texts = ["很好 很满意", "非常好", "好用 满意", "很差 失望", "太差了", "差评 失望"]
    labels = ["pos", "pos", "pos", "neg", "neg", "neg"]
    first = TfidfLogistic(min_count=1).fit(texts, labels)
    assert first.accuracy(texts, labels) == 1.0
    assert first.predict(["满意 很好", "失望 太差"]) == ["pos", "neg"]
    probabilities = first.predict_proba(["好", "差"])
    assert torch.allclose(probabilities.sum(-1), torch.ones(2))
    again = TfidfLogistic(min_count=1).fit(texts, labels)
    assert torch.equal(first.weight, again.weight)
    with pytest.raises(ValueError, match="as many labels as texts"):
        TfidfLogistic().fit(["a"], [])
