"""The demo's Chinese chapter: the whole life of a small Chinese BERT on People's Daily and review sentiment.

Each function is one stage (see stages.py): it calls the library the way the matching command does and
returns the numbers the report needs.
"""

from __future__ import annotations

import itertools
import json
import statistics
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from ...assets import peoples_daily_path, peoples_daily_sentences
from .plan import DemoPlan
from .stages import DemoContext, training_folder


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """The rows of a JSONL file the demo wrote itself (task splits, metrics)."""
    with open(path, encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


# ------------------------------------------------------------------------------------------------ data
def data(ctx: DemoContext) -> dict[str, Any]:
    """People's Daily as PKU text and plain text, unlabelled training reviews, a WordPiece vocabulary, the
    jieba-marked pretraining corpus (news and reviews), and the review sentiment splits."""
    from ...data.prepare import prepare_corpus
    from ...datasets import write_task
    from ...tokenization import WordPieceTokenizer

    plan, folder = ctx.plan, ctx.path("data")
    folder.mkdir(parents=True, exist_ok=True)
    pku, text = folder / "peoples_daily.pku.txt", folder / "peoples_daily.txt"
    with open(peoples_daily_path(), encoding="utf-8", errors="replace") as source:
        lines = [line for line in source if line.strip()][: plan.corpus_lines]
    pku.write_text("".join(lines), encoding="utf-8")
    sentences = itertools.islice(peoples_daily_sentences(), len(lines))  # one per non-empty line, tags removed
    text.write_text("".join("".join(words) + "\n" for words in sentences), encoding="utf-8")
    reviews = folder / "reviews.txt"
    review_count = _unlabelled_reviews(reviews, plan.review_lines)
    print(f"   People's Daily: {len(lines):,} lines, and {review_count:,} unlabelled training reviews; training a "
          f"{plan.vocab_size:,}-token WordPiece vocabulary", flush=True)
    tokenizer = WordPieceTokenizer.train([str(text), str(reviews)], vocab_size=plan.vocab_size, min_frequency=1,
                                         limit_alphabet=7000, show_progress=False)
    tokenizer.save_pretrained(folder / "tokenizer")
    summary = prepare_corpus([text, reviews], folder / "corpus", tokenizer, input_format="text", doc_per_line=True,
                             chinese_words="jieba", overwrite=True)
    counts = write_task("chinese-sentiment", folder / "sentiment", seed=0,
                        limit={"train": plan.train, "dev": plan.dev, **({"test": plan.test} if plan.test else {})})
    return {"lines": len(lines), "reviews": review_count, "vocab_size": tokenizer.vocab_size,
            "tokens": summary.tokens, "documents": summary.documents, "sentiment": counts["examples"]}


def _unlabelled_reviews(path: Path, limit: int | None) -> int:
    """The texts of the sentiment task's training split, labels dropped, one per line: in-domain text for
    pretraining (domain-adaptive pretraining, Gururangan et al. 2020). Never a dev or test review."""
    import tempfile

    from ...datasets import write_task

    with tempfile.TemporaryDirectory() as scratch:
        write_task("chinese-sentiment", scratch, seed=0)
        texts = [row["text"].replace("\n", " ") for row in read_jsonl(Path(scratch) / "train.jsonl")][:limit]
    path.write_text("".join(t + "\n" for t in texts), encoding="utf-8")
    return len(texts)


# -------------------------------------------------------------------------------------------- pretrain
def pretrain_model(data: Path, run_dir: Path, plan: DemoPlan, seed: int = 0, overrides: Sequence[str] = ()
                   ) -> dict[str, Any]:
    """Pretrain on `data`'s corpus and tokenizer with the chinese-wwm recipe at the plan's size; `overrides`
    change the masking or the objectives (what reproduce compares). Continues an interrupted run."""
    from ..pretrain import Pretraining, load_config, run_config

    steps = plan.pretrain_steps
    config = load_config("chinese-wwm", [
        f"corpus={data / 'corpus'}", f"tokenizer={data / 'tokenizer'}", f"run_dir={run_dir}",
        f"model.preset={plan.preset}", f"data.max_length={plan.pretrain_length}", "data.format=full_sentences",
        "objectives={mlm: 1.0}", f"train.max_steps={steps}", f"train.batch_size={plan.pretrain_batch}",
        f"train.learning_rate={plan.pretrain_learning_rate}", f"train.eval_every={steps}",
        f"train.save_every={max(steps // 4, 25)}", "train.log_every=10", f"seed={seed}",
        f"model.hidden_dropout_prob={plan.pretrain_dropout}", f"model.attention_probs_dropout_prob={plan.pretrain_dropout}",
        *overrides])
    with training_folder(run_dir, None, run_config(config)) as resume:
        Pretraining.build(config).run(resume=resume)
    evaluation = json.loads((run_dir / "eval.json").read_text(encoding="utf-8"))
    return {"steps": steps, "preset": plan.preset, "mlm_accuracy": evaluation.get("eval/mlm_acc"),
            "hidden_accuracy": evaluation.get("eval/mlm_acc_hidden"),
            "unigram_accuracy": evaluation.get("unigram_baseline_mlm_acc"), "loss": evaluation.get("eval/loss"),
            "model": str(run_dir / "model")}


def pretrain(ctx: DemoContext) -> dict[str, Any]:
    """Whole-word masking (the chinese-wwm recipe) on the prepared corpus, masked LM alone on full sentences as
    RoBERTa does: with next-sentence prediction beside it, a model this small sat at the most-frequent-token
    rate for a whole short run (docs/demo.md)."""
    plan = ctx.plan
    print(f"   bertology pretrain chinese-wwm --set model.preset={plan.preset} --set train.max_steps="
          f"{plan.pretrain_steps} --set objectives='{{mlm: 1.0}}' --set data.format=full_sentences ...", flush=True)
    return pretrain_model(ctx.path("data"), ctx.path("pretrain"), plan)


# -------------------------------------------------------------------------------------------- finetune
def sentiment_task(data: Path, max_length: int, head: dict[str, Any] | None = None) -> dict[str, Any]:
    """The review sentiment task of a data folder (`data`/sentiment), as a fine-tuning config's task."""
    data = data / "sentiment"
    return {"kind": "classification", "labels": str(data / "labels.txt"), "max_length": max_length,
            "head": head or {"layers": "top", "pooling": "mean"},
            **{split: str(data / f"{split}.jsonl") for split in ("train", "dev", "test")}}


def _task(ctx: DemoContext) -> dict[str, Any]:
    return sentiment_task(ctx.path("data"), ctx.plan.max_length)


def finetune_model(task: dict[str, Any], model: str, run_dir: Path, learning_rate: float, epochs: int, seed: int = 0,
                   method: str = "full") -> dict[str, Any]:
    """Fine-tune `model` on `task` (full, or frozen features); continues an interrupted run."""
    from ..finetune import Finetuning, finetune_config, run_config

    config = finetune_config({"model": model, "run_dir": str(run_dir), "seed": seed, "method": method,
                              "tasks": {"sentiment": task},
                              "train": {"epochs": epochs, "batch_size": 32, "learning_rate": learning_rate,
                                        "warmup_ratio": 0.06, "bf16": True, "plot": True, "log_every": 10}},
                             "demo: ")
    with training_folder(run_dir, lambda stored: stored.get("finetune"), run_config(config)) as resume:
        rows = Finetuning(config).run(resume=resume)
    test = next(r for r in rows if r["split"] == "test")
    return {"accuracy": test["accuracy"], "macro_f1": test["macro_f1"], "parameters": test["trainable_parameters"],
            "model": str(run_dir / "model")}


def random_init_folder(pretrained: Path, folder: Path, seed: int = 0) -> Path:
    """`pretrained`'s architecture and tokenizer at random weights, saved in `folder`."""
    from ...models import load
    from ...tokenization import Tokenizer

    if not (folder / "config.json").is_file():
        encoder = load(pretrained)
        encoder = getattr(encoder, "bert", encoder)
        torch.manual_seed(seed)
        type(encoder)(encoder.config, add_pooling_layer=getattr(encoder, "pooler", None) is not None).save_pretrained(folder)
        Tokenizer.from_pretrained(pretrained).save_pretrained(folder)
    return folder


def finetune(ctx: DemoContext) -> dict[str, Any]:
    """Sentiment from the pretrained model and from the same architecture at random weights, same recipe."""
    ctx.need("pretrain")
    plan = ctx.plan
    print("   from the pretrained model", flush=True)
    pretrained = finetune_model(_task(ctx), str(ctx.path("pretrain", "model")), ctx.path("finetune", "pretrained"),
                                plan.learning_rate, plan.epochs)
    print("   from random initialisation (same architecture, same recipe)", flush=True)
    random = finetune_model(_task(ctx), str(random_init_folder(ctx.path("pretrain", "model"),
                                                                ctx.path("finetune", "random-init-encoder"))),
                            ctx.path("finetune", "random-init"), plan.learning_rate, plan.epochs)
    test = read_jsonl(ctx.path("data", "sentiment", "test.jsonl"))
    labels = [row["label"] for row in test]
    majority = max(labels.count(label) for label in set(labels)) / len(labels)
    return {"pretrained": pretrained, "random_init": random, "majority": majority}


# -------------------------------------------------------------------------------------------- baseline
def baseline(ctx: DemoContext) -> dict[str, Any]:
    """Character 1-3-gram TF-IDF and logistic regression on the same training reviews."""
    from ...finetuning.baselines import TfidfLogistic

    data = ctx.path("data", "sentiment")
    train, test = read_jsonl(data / "train.jsonl"), read_jsonl(data / "test.jsonl")
    model = TfidfLogistic().fit([r["text"] for r in train], [r["label"] for r in train])
    accuracy = model.accuracy([r["text"] for r in test], [r["label"] for r in test])
    times = []
    for row in test[: ctx.plan.latency_texts]:
        start = time.perf_counter()
        model.predict([row["text"]])
        times.append(time.perf_counter() - start)
    print(f"   test accuracy {accuracy:.4f} ({len(model.vocabulary):,} n-grams, fitted in {model.fit_seconds:.1f} s)")
    return {"accuracy": accuracy, "ngrams": len(model.vocabulary), "latency_ms": statistics.median(times) * 1e3}


# -------------------------------------------------------------------------------------------- compress
def distill_model(task: dict[str, Any], teacher: str, run_dir: Path, plan: DemoPlan, seed: int = 0,
                  layer_map: str = "uniform") -> dict[str, Any]:
    """TinyBERT task distillation of a fine-tuned `teacher` into the plan's student (intermediate layers, then
    predictions); continues an interrupted run."""
    from ..distill import Distilling, load_config, run_config

    overrides = [f"teacher={teacher}", f"run_dir={run_dir}", f"task.train={task['train']}", f"task.dev={task['dev']}",
                 f"task.test={task['test']}", f"max_length={task['max_length']}", f"seed={seed}",
                 f"layer_map={layer_map}", "train.batch_size=32", "train.save_every=0", "train.plot=false",
                 "train.log_every=10", *[f"student.size.{k}={v}" for k, v in plan.student.items()],
                 *[f"phase_train.{p}.epochs={n}" for p, n in plan.distill_epochs.items()],
                 *[f"phase_train.{p}.learning_rate={plan.student_learning_rate}" for p in plan.distill_epochs]]
    config = load_config("tinybert-task", overrides)
    distilling = Distilling(config)
    with training_folder(run_dir, lambda stored: stored.get("distill"), run_config(config)["distill"]) as resume:
        summary = distilling.run(resume=resume)
    return {"accuracy": summary.get("student_test accuracy"), "teacher_accuracy": summary.get("teacher_test accuracy"),
            "parameters": summary["student_parameters"], "teacher_parameters": summary["teacher_parameters"],
            "model": str(run_dir / "model")}


def distill(ctx: DemoContext) -> dict[str, Any]:
    """TinyBERT task distillation of the fine-tuned model into a smaller student."""
    return distill_model(_task(ctx), ctx.need("finetune")["pretrained"]["model"], ctx.path("distill"), ctx.plan)


def quantize(ctx: DemoContext) -> dict[str, Any]:
    """Dynamic int8 quantization of the student's linear layers."""
    from ..quantize import QuantizeRun
    from ..quantize import quantize as run_quantize

    student = ctx.need("distill")["model"]
    run = QuantizeRun(model=student, run_dir=str(ctx.path("quantize")), test=_task(ctx)["test"], time_speed=False)
    run.validate()
    results = run_quantize(run)
    return {"accuracy": results["metric"], "original_accuracy": results["original_metric"], "model": results["model"]}


# -------------------------------------------------------------------------------------------- measure
def latency(folder: str, texts: list[str]) -> float:
    """Median milliseconds to classify one review at a time through the inference session (what `predict`
    and `serve` run), after two untimed calls."""
    from ...finetuning.examples import Example
    from ...finetuning.features import encode
    from ...finetuning.predict import task_logits
    from ...finetuning.session import load_for_inference

    session = load_for_inference(folder, device="cpu")
    times = []
    for i, text in enumerate([*texts[:2], *texts]):
        start = time.perf_counter()
        features = encode([Example(text=text)], session.tokenizer, session.config.task_kind, None,
                          max_length=session.config.max_length)
        task_logits(session.model, session.name, features, session.collate, batch_size=1, bucket=False)
        if i >= 2:
            times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e3


def measure(ctx: DemoContext) -> dict[str, Any]:
    """Accuracy against single-review latency for every model variant, under the same threads."""
    from ...compression.report import folder_size

    texts = [row["text"] for row in read_jsonl(ctx.path("data", "sentiment", "test.jsonl"))][: ctx.plan.latency_texts]
    tuned, student, quantized = ctx.need("finetune"), ctx.need("distill"), ctx.need("quantize")
    variants = [("fine-tuned (pretrained)", tuned["pretrained"]["model"], tuned["pretrained"]["accuracy"]),
                ("fine-tuned (random init)", tuned["random_init"]["model"], tuned["random_init"]["accuracy"]),
                ("distilled student", student["model"], student["accuracy"]),
                ("student, int8", quantized["model"], quantized["accuracy"])]
    # an untimed round first (the first model timed in a process paid ~15% more: allocator and kernel warm-up),
    # then two rounds over all variants, the lower median kept: one variant's round can meet a busy moment
    timings = [[latency(folder, texts) for _, folder, _ in variants] for _ in range(3)][1:]
    rows = []
    for i, (name, folder, accuracy) in enumerate(variants):
        rows.append({"name": name, "accuracy": accuracy, "latency_ms": min(t[i] for t in timings),
                     "size_bytes": folder_size(folder)})
        print(f"   {name}: accuracy {accuracy:.4f}, {rows[-1]['latency_ms']:.2f} ms per review", flush=True)
    base = ctx.need("baseline")
    rows.append({"name": "TF-IDF + logistic regression", "accuracy": base["accuracy"],
                 "latency_ms": base["latency_ms"], "size_bytes": None})
    return {"variants": rows, "threads": torch.get_num_threads(), "texts": len(texts)}


# -------------------------------------------------------------------------------------------- analyse
def probe(ctx: DemoContext) -> dict[str, Any]:
    """A linear part-of-speech probe per layer (People's Daily tags), pretrained against random weights."""
    from ..probe import ProbeRun
    from ..probe import probe as run_probe

    pku = str(ctx.path("data", "peoples_daily.pku.txt"))
    results = {}
    for name, random_init in (("pretrained", False), ("random_init", True)):
        run = ProbeRun(model=str(ctx.path("pretrain", "model")), data=pku, format="pku", out=str(ctx.path("probe", name)), sentences=ctx.plan.probe_sentences, random_init=random_init)
        summary = run_probe(run)
        results[name] = [{"layer": r["layer"], "accuracy": r["accuracy"], "selectivity": r["selectivity"]}
                         for r in summary["layers"]]
    return results


def attention(ctx: DemoContext) -> dict[str, Any]:
    """Attention statistics per head, heads grouped by behaviour, one head per group drawn."""
    from ..attention import AttentionRun
    from ..attention import attention as run_attention

    run = AttentionRun(model=str(ctx.path("pretrain", "model")), data=str(ctx.path("data", "peoples_daily.txt")),
                       out=str(ctx.path("attention")), sentences=ctx.plan.attention_sentences)
    summary = run_attention(run)
    groups = summary["groups"]
    return {"heatmap": str(ctx.path("attention", "heads.png")), "groups": groups}
