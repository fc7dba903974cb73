"""Claims about fine-tuning: which layers feed a task best, frozen and tuned."""

from __future__ import annotations

from ..claim import Claim, all_of, greater
from . import add

FROZEN = {"embeddings (frozen)": {"layers": "embeddings", "pooling": "mean"},
          "top layer (frozen)": {"layers": "top", "pooling": "mean"},
          "last four concatenated (frozen)": {"layers": "concat_last_four", "pooling": "mean"},
          "scalar mix of all (frozen)": {"layers": "scalar_mix", "pooling": "mean"}}


def _measure(ws, seed: int) -> dict[str, float]:
    model = ws.pretrained("wwm", seed)
    values = {name: ws.finetuned(model, "frozen-" + head["layers"], seed, method="frozen", head=head)["accuracy"]
              for name, head in FROZEN.items()}
    values["tuned (top layer)"] = ws.tuned("wwm", seed)["accuracy"]
    return values


def _test(results: dict[str, list[float]]):
    frozen = [name for name in results if name.endswith("(frozen)")]
    best = [max(results[name][i] for name in frozen) for i in range(len(results[frozen[0]]))]
    return all_of({"tuned against the best frozen choice": greater(results["tuned (top layer)"], best),
                   "last four against embeddings": greater(results["last four concatenated (frozen)"],
                                                           results["embeddings (frozen)"])})

add(Claim(
    name="layers",
    statement="Frozen features are best taken from several top layers (the last four concatenated), far better "
              "than the embeddings; fine-tuning the whole encoder beats every frozen choice.",
    paper="Devlin et al. (2019, Table 7, CoNLL-2003 NER dev F1): embeddings 91.0, last hidden 94.9, last four "
          "concatenated 96.1 (best frozen), fine-tuning 96.4",
    setup="the 4-layer whole-word model of pretraining-helps; a linear head on mean-pooled features of the named "
          "layers of the frozen encoder (10 epochs, lr 2e-3), against full fine-tuning",
    arms=(*FROZEN, "tuned (top layer)"), metric="Chinese review sentiment, test accuracy",
    measure=_measure, test=_test, minutes=2.0, needs=("wwm",)))
