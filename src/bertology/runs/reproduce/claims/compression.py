"""Claims about compression: TinyBERT's student and its layer map, int8 quantization, head pruning."""

from __future__ import annotations

import statistics
from pathlib import Path

from ..claim import FAILS, HOLDS, INCONCLUSIVE, Claim, all_of, greater, not_worse
from . import add

SENTIMENT = "Chinese review sentiment, test accuracy"


def _student(ws, seed: int, layer_map: str) -> dict:
    from ...demo import chinese

    teacher = ws.tuned("wwm", seed)["model"]
    run_dir = ws.root / "distill" / f"{layer_map}-seed{seed}"
    print(f"   distilling: {layer_map} layer map, seed {seed}", flush=True)
    return ws.cached(f"distill-{layer_map}-seed{seed}",
                      lambda: chinese.distill_model(ws.task(), teacher, run_dir, ws.plan, seed, layer_map))


def _latencies(ws, seed: int) -> dict[str, float]:
    from ...demo import chinese

    texts = [row["text"] for row in ws.test_texts(50)]
    teacher, student = ws.tuned("wwm", seed)["model"], _student(ws, seed, "uniform")["model"]
    return ws.cached(f"latency-seed{seed}", lambda: {"teacher": chinese.latency(teacher, texts),
                                                      "student": chinese.latency(student, texts)})


def _keeps_most(ws, seed: int) -> dict[str, float]:
    student = _student(ws, seed, "uniform")
    speed = _latencies(ws, seed)
    return {"teacher": ws.tuned("wwm", seed)["accuracy"], "student": student["accuracy"],
            "student share of teacher": student["accuracy"] / ws.tuned("wwm", seed)["accuracy"],
            "student speed-up": speed["teacher"] / speed["student"],
            "parameter ratio": student["teacher_parameters"] / student["parameters"]}


def _keeps_most_test(results: dict[str, list[float]]):
    share = statistics.fmean(results["student share of teacher"])
    faster = min(results["student speed-up"]) > 1.0
    detail = (f"student keeps {share:.1%} of the teacher's accuracy at {statistics.fmean(results['parameter ratio']):.1f}x "
              f"fewer parameters, {statistics.fmean(results['student speed-up']):.2f}x faster per review")
    if share >= 0.9 and faster:
        return HOLDS, detail
    if share < 0.8 or not faster:
        return FAILS, detail
    return INCONCLUSIVE, detail


add(Claim(
    name="tinybert",
    statement="A TinyBERT student keeps most of its teacher's accuracy (here: at least 90%) at a fraction of its "
              "size and cost.",
    paper="Jiao et al. (2020, TinyBERT): the 4-layer student keeps 96.8% of BERT-base's GLUE score, 7.5x smaller "
          "and 9.4x faster",
    setup="teacher: the fine-tuned 4-layer, 128-wide whole-word model; student: 2 layers, 64 wide, TinyBERT task "
          "distillation (intermediate layers, then predictions) on the 800 training reviews; latency: median of 50 "
          "test reviews classified one at a time",
    arms=("teacher", "student", "student share of teacher", "student speed-up", "parameter ratio"), metric=SENTIMENT,
    measure=_keeps_most, test=_keeps_most_test, minutes=1.5, needs=("wwm",)))


def _maps(ws, seed: int) -> dict[str, float]:
    return {m: _student(ws, seed, m)["accuracy"] for m in ("uniform", "top", "bottom")}


def _maps_test(results: dict[str, list[float]]):
    return all_of({"uniform against top": greater(results["uniform"], results["top"]),
                   "against bottom": greater(results["uniform"], results["bottom"])})

add(Claim(
    name="layer-map",
    statement="TinyBERT's uniform layer map (student layer m learns from teacher layer 2m) beats learning from the "
              "teacher's top or bottom layers only.",
    paper="Jiao et al. (2020, TinyBERT, Table 7 and Section 4.6): the uniform strategy ahead of top and bottom on "
          "every GLUE task they compare (bottom worst on most)",
    setup="as tinybert; the 2-layer student learns from teacher layers (2, 4), (3, 4) or (1, 2)",
    arms=("uniform", "top", "bottom"), metric=SENTIMENT,
    measure=_maps, test=_maps_test, minutes=2.0, needs=("wwm",)))


def _int8(ws, seed: int) -> dict[str, float]:
    from ...quantize import QuantizeRun, quantize

    tuned = ws.tuned("wwm", seed)

    def build() -> dict:
        run = QuantizeRun(model=tuned["model"], run_dir=str(ws.root / "quantize" / f"seed{seed}"),
                          test=ws.task()["test"], time_speed=False)
        run.validate()
        return quantize(run)

    result = ws.cached(f"int8-seed{seed}", build)
    return {"float32": result["original_metric"], "int8": result["metric"]}


add(Claim(
    name="int8",
    statement="Dynamic int8 quantization of the linear layers costs little accuracy (here: under one point).",
    paper="Zafrir et al. (2019, Q8BERT): 8-bit BERT within 1% of the float32 model on GLUE and SQuAD, 4x smaller",
    setup="the fine-tuned 4-layer whole-word model, its linear layers quantized to int8 (dynamic activations)",
    arms=("float32", "int8"), metric=SENTIMENT,
    measure=_int8, test=lambda r: not_worse(r["int8"], r["float32"], margin=0.01), minutes=0.5, needs=("wwm",)))


def _heads(ws, seed: int) -> dict[str, float]:
    from ....finetuning.session import load_for_inference
    from ...prune import PruneRun, prune

    tuned = ws.tuned("wwm", seed)
    out = ws.root / "prune" / f"seed{seed}"

    def build() -> dict:
        run = PruneRun(model=tuned["model"], out=str(out), data=ws.task()["train"], heads="0.5", speed=False,
                       seed=seed)
        prune(run)
        session = load_for_inference(out / "model", device="cpu")
        return {"accuracy": session.evaluate(session.read(Path(ws.task()["test"]), "test"))["accuracy"]}

    pruned = ws.cached(f"prune-seed{seed}", build)
    return {"all heads": tuned["accuracy"], "half the heads pruned": pruned["accuracy"]}


add(Claim(
    name="heads",
    statement="Most attention heads can be pruned at test time with little loss (here: half of them, by "
              "importance, within two points, without retraining).",
    paper="Michel et al. (2019, 'Are Sixteen Heads Really Better than One?'): 20-40% of BERT's heads pruned on MNLI "
          "before accuracy drops noticeably; most single layers work with one head",
    setup="the fine-tuned 4-layer whole-word model (8 heads); the half with the lowest importance (gradient "
          "sensitivity on the training reviews) removed, no recovery training",
    arms=("all heads", "half the heads pruned"), metric=SENTIMENT,
    measure=_heads, test=lambda r: not_worse(r["half the heads pruned"], r["all heads"], margin=0.02),
    minutes=0.5, needs=("wwm",)))
