"""The classic baseline a fine-tuned encoder must beat: character n-gram TF-IDF and logistic regression.

Written on torch rather than pulled from scikit-learn: the model is twenty lines here, and scikit-learn would
bring SciPy (tens of MB) into the install for one baseline. Features are the text's character n-grams
(`ngrams`, e.g. 1 to 3: Chinese words are one to three characters, so character n-grams stand in for a
word segmenter), weighted by sublinear term frequency times smoothed inverse document frequency and
L2-normalised per text, as the usual TF-IDF; the classifier is multinomial logistic regression with an L2
penalty, fitted to convergence with L-BFGS on the full training set (deterministic: no minibatches).
"""

from __future__ import annotations

import math
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch

from ..data.sentences import has_cjk

__all__ = ["TfidfLogistic"]


@dataclass
class TfidfLogistic:
    ngrams: tuple[int, int] = (1, 3)
    #: n-grams seen in fewer training texts are dropped (noise, and memory)
    min_count: int = 2
    #: inverse regularization strength, as scikit-learn's C
    c: float = 10.0
    max_iter: int = 200
    vocabulary: dict[str, int] = field(default_factory=dict)
    idf: torch.Tensor | None = None
    labels: list[str] = field(default_factory=list)
    weight: torch.Tensor | None = None
    fit_seconds: float = 0.0

    def _grams(self, text: str) -> Counter:
        low, high = self.ngrams
        text = "".join(text.split()) if has_cjk(text) else text.lower()
        return Counter(text[i:i + n] for n in range(low, high + 1) for i in range(len(text) - n + 1))

    def _features(self, texts: Sequence[str]) -> torch.Tensor:
        """A sparse (texts, n-grams + 1) matrix: L2-normalised TF-IDF rows, and a constant bias column."""
        rows, cols, values = [], [], []
        bias = len(self.vocabulary)
        for row, text in enumerate(texts):
            entries = [(self.vocabulary[g], (1.0 + math.log(k)) * float(self.idf[self.vocabulary[g]]))
                       for g, k in self._grams(text).items() if g in self.vocabulary]
            norm = math.sqrt(sum(v * v for _, v in entries)) or 1.0
            for col, value in entries:
                rows.append(row)
                cols.append(col)
                values.append(value / norm)
            rows.append(row)
            cols.append(bias)
            values.append(1.0)
        return torch.sparse_coo_tensor(torch.tensor([rows, cols]), torch.tensor(values), (len(texts), bias + 1),
                                       check_invariants=False).coalesce()

    def fit(self, texts: Sequence[str], labels: Sequence[str]) -> TfidfLogistic:
        """Learn the vocabulary, IDF weights and the classifier from labelled texts."""
        if len(texts) != len(labels) or not texts:
            raise ValueError(f"need as many labels as texts (and at least one), got {len(texts)} and {len(labels)}")
        start = time.perf_counter()
        document_frequency: Counter = Counter()
        for text in texts:
            document_frequency.update(set(self._grams(text)))
        kept = sorted(g for g, n in document_frequency.items() if n >= self.min_count)
        self.vocabulary = {g: i for i, g in enumerate(kept)}
        n = len(texts)
        self.idf = torch.tensor([math.log((1 + n) / (1 + document_frequency[g])) + 1 for g in kept])
        self.labels = sorted(set(labels))
        x = self._features(texts)
        y = torch.tensor([self.labels.index(label) for label in labels])
        weight = torch.zeros(x.shape[1], len(self.labels), requires_grad=True)
        optimizer = torch.optim.LBFGS([weight], lr=1.0, max_iter=self.max_iter, history_size=20,
                                      line_search_fn="strong_wolfe", tolerance_grad=1e-6)

        def closure() -> torch.Tensor:
            optimizer.zero_grad()
            # the mean log-loss plus the L2 penalty scikit-learn uses (C scales the data term), bias unpenalized
            loss = torch.nn.functional.cross_entropy(torch.sparse.mm(x, weight), y) + (weight[:-1] ** 2).sum() / (2 * self.c * n)
            loss.backward()
            return loss

        optimizer.step(closure)
        self.weight = weight.detach()
        self.fit_seconds = time.perf_counter() - start
        return self

    def predict_proba(self, texts: Sequence[str]) -> torch.Tensor:
        if self.weight is None:
            raise RuntimeError("fit the baseline before predicting")
        return torch.softmax(torch.sparse.mm(self._features(texts), self.weight), dim=-1)

    def predict(self, texts: Sequence[str]) -> list[str]:
        return [self.labels[i] for i in self.predict_proba(texts).argmax(dim=-1).tolist()]

    def accuracy(self, texts: Sequence[str], labels: Sequence[str]) -> float:
        predicted = self.predict(texts)
        return sum(p == g for p, g in zip(predicted, labels, strict=True)) / max(len(labels), 1)
