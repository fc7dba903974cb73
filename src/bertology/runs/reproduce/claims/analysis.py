"""Claims about what is inside: where syntax lives, and whether word order matters to predictions."""

from __future__ import annotations

import statistics

from ..claim import FAILS, HOLDS, INCONCLUSIVE, Claim, greater
from . import add


def _probe(ws, seed: int) -> dict[str, float]:
    from ...probe import ProbeRun, probe

    def build() -> dict:
        run = ProbeRun(model=ws.pretrained("wwm", seed), data=str(ws.data / "peoples_daily.pku.txt"), format="pku",
                       out=str(ws.root / "probe" / f"seed{seed}"), sentences=ws.plan.probe_sentences, seed=seed)
        return {f"layer {r['layer']}": r["accuracy"] for r in probe(run)["layers"]}

    layers = ws.cached(f"probe-seed{seed}", build)
    names = sorted(layers, key=lambda n: int(n.split()[1]))
    middle = max(layers[n] for n in names[1:-1])
    return {**layers, "best middle layer": middle, "best of embeddings and top": max(layers[names[0]], layers[names[-1]])}


add(Claim(
    name="syntax-middle",
    statement="Syntax (here: part of speech) is most recoverable from the middle layers, not the embeddings or the "
              "top.",
    paper="Hewitt and Manning (2019): BERT-large's structural probe peaks at layer 16 of 24; Rogers et al. (2020, "
          "'A Primer in BERTology'): syntactic information is most prominent in the middle layers",
    setup="a linear part-of-speech probe (People's Daily tags, 500 sentences, 80/10/10) on each layer of the "
          "pretrained 4-layer whole-word model",
    arms=("layer 0", "layer 1", "layer 2", "layer 3", "layer 4", "best middle layer", "best of embeddings and top"),
    metric="part-of-speech probe accuracy",
    measure=_probe, test=lambda r: greater(r["best middle layer"], r["best of embeddings and top"]),
    minutes=0.5, needs=("wwm",)))


def _shuffle(ws, seed: int) -> dict[str, float]:
    import numpy as np
    import torch

    from ....analysis.robustness import measure
    from ....finetuning.examples import Example
    from ....finetuning.session import load_for_inference

    def build() -> dict:
        session = load_for_inference(ws.tuned("wwm", seed)["model"], device="cpu")

        def predict(texts: list[str]) -> np.ndarray:
            _, logits = session.predict_examples([Example(text=t) for t in texts])
            return torch.softmax(torch.tensor(np.stack(logits)), dim=-1).numpy()

        texts = [row["text"] for row in ws.test_texts()]
        (result,) = measure(predict, texts, ["shuffle"], seed)
        return {"unchanged": 1.0 - result.changed}

    return ws.cached(f"shuffle-seed{seed}", build)


def _shuffle_test(results: dict[str, list[float]]):
    share = statistics.fmean(results["unchanged"])
    detail = f"{share:.1%} of predictions unchanged when each review's characters are shuffled"
    if share >= 0.75:
        return HOLDS, detail
    return (FAILS if share < 0.6 else INCONCLUSIVE), detail


add(Claim(
    name="shuffled-order",
    statement="A fine-tuned BERT's predictions mostly survive shuffled word order (here: at least 75% unchanged).",
    paper="Pham et al. (2020, 'Out of Order'): 75-90% of BERT-based classifiers' correct GLUE predictions stay the "
          "same when the words are shuffled; Sinha et al. (2021) find the same for NLI",
    setup="the fine-tuned 4-layer whole-word sentiment model on the 400 test reviews, each review's characters shuffled (Chinese text has no spaces)",
    arms=("unchanged",), metric="share of predictions unchanged",
    measure=_shuffle, test=_shuffle_test, minutes=0.3, needs=("wwm",)))
