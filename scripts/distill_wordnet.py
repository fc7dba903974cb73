"""TinyBERT's ablations on a real task: the real all-MiniLM-L6-v2, fine-tuned on WordNet gloss classification
(45 lexicographer files), as teacher; a 4-layer, 128-wide student (about 4.7x fewer parameters, embeddings
counted) distilled in several ways on the same data and budget. Prints and writes OUT/tables.md.

    python scripts/distill_wordnet.py OUT [--train 4000] [--augment]

Rows (each a run folder under OUT; a row whose results exist is read, not rerun, so a sweep resumes):
- teacher: MiniLM fine-tuned (full tuning, mean pooling);
- student fine-tuned directly, from random weights and from the general-distilled student;
- task distillation only (random student), and general then task distillation (the full method) with the
  uniform, top and bottom layer maps.
Every student trains for the same number of epochs over the same examples.
"""

from __future__ import annotations

import argparse
import json
import time
from itertools import islice
from pathlib import Path

import torch

from bertology import BertModel, Tokenizer
from bertology.assets import english_fortune_files, minilm_dir, read_fortunes
from bertology.data import prepare_corpus
from bertology.datasets import write_task
from bertology.runs.distill import Distilling, load_config
from bertology.runs.finetune import Finetuning, finetune_config
from bertology.utils.table import format_table

STUDENT = {"num_hidden_layers": 4, "hidden_size": 128, "num_attention_heads": 4, "intermediate_size": 512}
TASK_EPOCHS = {"intermediate": 4, "prediction": 3}
STUDENT_LR = 1e-3


def task_config(data: Path, model: str, run_dir: Path, epochs: int, lr: float) -> dict:
    return {"model": model, "run_dir": str(run_dir), "seed": 0,
            "tasks": {"lexname": {"kind": "classification", "train": str(data / "train.jsonl"),
                                  "dev": str(data / "dev.jsonl"), "test": str(data / "test.jsonl"),
                                  "labels": str(data / "labels.txt"), "max_length": 64,
                                  "head": {"layers": "top", "pooling": "mean"}}},
            "train": {"epochs": epochs, "batch_size": 32, "learning_rate": lr, "warmup_ratio": 0.06, "bf16": True,
                      "progress": False, "plot": False, "log_every": 50}}


def finetune_row(run_dir: Path, config: dict) -> dict:
    done = run_dir / "results.json"
    if not done.is_file():
        start = time.perf_counter()
        Finetuning(finetune_config(config)).run()
        (run_dir / "seconds.txt").write_text(f"{time.perf_counter() - start:.0f}")
    results = {r["split"]: r for r in json.loads(done.read_text())}
    model = run_dir / "model"
    from bertology.finetuning.model import TaskModel

    params = sum(p.numel() for p in TaskModel.from_pretrained(model).encoder.parameters())
    return {"test": results["test"]["accuracy"], "dev": results["dev"]["accuracy"], "parameters": params,
            "seconds": float((run_dir / "seconds.txt").read_text())}


def distill_row(run_dir: Path, overrides: list[str], recipe: str = "tinybert-task") -> dict:
    summary = run_dir / "distill_summary.json"
    if not summary.is_file():
        start = time.perf_counter()
        Distilling(load_config(recipe, [*overrides, f"run_dir={run_dir}"])).run()
        (run_dir / "seconds.txt").write_text(f"{time.perf_counter() - start:.0f}")
    data = json.loads(summary.read_text())
    return {"test": data.get("student_test accuracy"), "teacher": data.get("teacher_test accuracy"),
            "parameters": data["student_parameters"], "seconds": float((run_dir / "seconds.txt").read_text())}


def write_table(out: Path, title: str, rows: list[tuple[str, dict]]) -> None:
    """OUT/tables.md and the terminal: each row's parameters, test accuracy and share of the first (the teacher)."""
    base = rows[0][1]["test"]
    lines = [[name, f"{r['parameters']:,}", f"{r['test']:.4f}", f"{100 * r['test'] / base:.1f}%", f"{r['seconds']:.0f}"]
             for name, r in rows]
    header = ["model", "encoder parameters", "test accuracy", "share of teacher", "seconds"]
    (out / "tables.md").write_text(f"{title}\n\n{format_table(header, lines, markdown=True)}\n", encoding="utf-8")
    print(format_table(header, lines))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", type=Path)
    parser.add_argument("--train", type=int, default=4000)
    parser.add_argument("--general-steps", type=int, default=400)
    parser.add_argument("--augment", action="store_true", help="add the augmentation row (trains a masked LM first)")
    parser.add_argument("--mlm-steps", type=int, default=300)
    parser.add_argument("--copies", type=int, default=4)
    args = parser.parse_args()
    out = args.out.resolve()
    data = out / "data" / "wordnet"
    if not (data / "stats.json").is_file():
        write_task("wordnet-lexnames", data, seed=0, limit={"train": args.train, "dev": 1000, "test": 2000})
    tok = Tokenizer.from_pretrained(minilm_dir())
    rows: list[tuple[str, dict]] = []

    teacher = finetune_row(out / "teacher", task_config(data, str(minilm_dir()), out / "teacher", 3, 1e-4))
    rows.append(("teacher: MiniLM fine-tuned (6 x 384)", teacher))
    teacher_model = str(out / "teacher" / "model")

    # a random student folder, for direct fine-tuning without distillation
    random_dir = out / "random-student"
    if not (random_dir / "config.json").is_file():
        torch.manual_seed(0)
        config = BertModel.from_pretrained(minilm_dir()).config.replace(**STUDENT)
        BertModel(config).save_pretrained(random_dir)
        tok.save_pretrained(random_dir)

    # general distillation on English fortunes (no WordNet text: the task's test glosses stay unseen)
    corpus = out / "corpus"
    if not (corpus / "meta.json").is_file():
        texts = list(islice((t for f in english_fortune_files() for t in read_fortunes(f)), 20000))
        (out / "fortunes.txt").write_text("\n\n".join(texts) + "\n", encoding="utf-8")
        prepare_corpus([out / "fortunes.txt"], corpus, tok, progress=False)
    general = out / "general"
    gd = distill_row(general, [f"teacher={minilm_dir()}", f"corpus={corpus}", "max_length=64",
                               f"train.max_steps={args.general_steps}", "train.progress=false", "train.plot=false",
                               "train.save_every=0", *[f"student.size.{k}={v}" for k, v in STUDENT.items()]],
                     recipe="tinybert-general")
    general_model = str(general / "model")

    budget = sum(TASK_EPOCHS.values())
    rows.append(("student fine-tuned directly, random init",
                 finetune_row(out / "direct-random", task_config(data, str(random_dir), out / "direct-random",
                                                                 budget, STUDENT_LR))))
    rows.append(("student fine-tuned directly, general-distilled init",
                 finetune_row(out / "direct-general", task_config(data, general_model, out / "direct-general",
                                                                  budget, STUDENT_LR))))
    common = [f"teacher={teacher_model}", f"task.train={data / 'train.jsonl'}", f"task.test={data / 'test.jsonl'}",
              "task.max_length=64", "train.progress=false", "train.plot=false", "train.log_every=50",
              f"phase_train.intermediate.epochs={TASK_EPOCHS['intermediate']}",
              f"phase_train.prediction.epochs={TASK_EPOCHS['prediction']}",
              f"phase_train.intermediate.learning_rate={STUDENT_LR}",
              f"phase_train.prediction.learning_rate={STUDENT_LR}", "seed=0"]
    rows.append(("task distillation only (random init, uniform map)",
                 distill_row(out / "task-only", [*common, *[f"student.size.{k}={v}" for k, v in STUDENT.items()]])))
    for layer_map in ("uniform", "top", "bottom"):
        rows.append((f"general + task distillation, {layer_map} map",
                     distill_row(out / f"general-task-{layer_map}",
                                 [*common, "student.init=pretrained", f"student.model={general_model}",
                                  f"layer_map={layer_map}"])))

    rows.append(("prediction-layer distillation only (general-distilled init)",
                 distill_row(out / "general-prediction-only",
                             [*common, "student.init=pretrained", f"student.model={general_model}",
                              "phases=[prediction]", f"phase_train.prediction.epochs={budget}",
                              f"phase_train={{prediction: {{epochs: {budget}, learning_rate: {STUDENT_LR}}}}}"])))
    rows.append(("prediction-layer distillation + the true labels (label_weight 1)",
                 distill_row(out / "general-prediction-labels",
                             [*common, "student.init=pretrained", f"student.model={general_model}",
                              "phases=[prediction]", "label_weight=1.0",
                              f"phase_train={{prediction: {{epochs: {budget}, learning_rate: {STUDENT_LR}}}}}"])))
    rows.append((f"prediction-layer distillation, 3x the budget ({3 * budget} epochs)",
                 distill_row(out / "general-prediction-long",
                             [*common, "student.init=pretrained", f"student.model={general_model}",
                              "phases=[prediction]",
                              f"phase_train={{prediction: {{epochs: {3 * budget}, learning_rate: {STUDENT_LR}}}}}"])))
    # Students that keep the teacher's own weights: two of its six layers (DistilBERT's initialisation), with the
    # teacher's vocabulary, with only the tokens of the training data, and with the 4,400 most frequent of those
    # (the rest read as [UNK]) so that the student is 4x smaller than the teacher.
    layers = ["student.init=teacher_layers", "student.layers=[2,5]", "phases=[prediction]",
              f"phase_train={{prediction: {{epochs: {budget}, learning_rate: 0.0001}}}}"]
    for name, extra in (("teacher layers 3 and 6, teacher's vocabulary", []),
                        ("teacher layers 3 and 6, the training data's vocabulary", ["student.vocabulary=data"]),
                        ("teacher layers 3 and 6, its 4,400 most frequent tokens",
                         ["student.vocabulary=data", "student.vocabulary_size=4400"])):
        folder = "teacher-layers" + "".join(f"-{e.split('=')[1]}" for e in extra)
        rows.append((f"prediction-layer distillation, {name}", distill_row(out / folder, [*common, *layers, *extra])))
    if args.augment:
        # TinyBERT's augmentation needs a masked LM: MiniLM ships without MLM head weights, so one is trained
        # here on top of MiniLM's encoder (masked LM only, English fortunes), then proposes replacement words.
        mlm = out / "mlm"
        if not (mlm / "model" / "config.json").is_file():
            import subprocess

            subprocess.run(["bertology", "pretrain", "bert", "--corpus", str(corpus),
                            "--tokenizer", str(minilm_dir()), "--run-dir", str(mlm), "--overwrite",
                            "--set", f"model.from_pretrained={minilm_dir()}", "--set", "objectives={mlm: 1.0}",
                            "--set", "data.format=full_sentences", "--set", "data.max_length=64",
                            "--set", f"train.max_steps={args.mlm_steps}", "--set", "train.progress=false",
                            "--set", f"train.eval_every={args.mlm_steps}", "--set", f"train.save_every={args.mlm_steps}"],
                           check=True)
        steps = budget * (args.train // 32)  # the same optimizer steps as the 7-epoch rows
        rows.append((f"prediction-layer distillation with augmentation (general init, {steps} steps)",
                     distill_row(out / "general-prediction-augmented",
                                 [*common, "student.init=pretrained", f"student.model={general_model}",
                                  "phases=[prediction]",
                                  f"phase_train={{prediction: {{max_steps: {steps}, learning_rate: {STUDENT_LR}}}}}",
                                  "augment.enabled=true", f"augment.model={mlm / 'model'}",
                                  f"augment.copies={args.copies}", "augment.vectors=teacher"])))
    write_table(out, f"WordNet lexnames, {args.train} training / 1,000 dev / 2,000 test glosses; general "
                     f"distillation {args.general_steps} steps on English fortunes ({gd['seconds']:.0f} s)", rows)


if __name__ == "__main__":
    main()
