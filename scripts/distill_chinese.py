"""TinyBERT on our own Chinese model: a character BERT (mini, L4/H256) pretrained with whole-word masking on
People's Daily, fine-tuned on Chinese review sentiment, is the teacher; a 2-layer, 96-wide student (about 5x fewer parameters) is distilled
(general distillation on People's Daily, then task distillation) and compared with the same student fine-tuned
directly (random and general-distilled init), with task distillation alone, with the top and bottom layer maps
and with augmentation. Writes OUT/tables.md.

    python scripts/distill_chinese.py OUT [--pretrain-steps 1000] [--train 4000]

About 35 minutes on 2 CPU cores. A row whose results exist is read, not rerun.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import torch  # noqa: E402
from distill_wordnet import distill_row, finetune_row, write_table  # noqa: E402

from bertology import Tokenizer, load  # noqa: E402
from bertology.datasets import write_task  # noqa: E402

STUDENT = {"num_hidden_layers": 2, "hidden_size": 96, "num_attention_heads": 4, "intermediate_size": 384}
TASK_EPOCHS = {"intermediate": 3, "prediction": 2}
STUDENT_LR = 1e-3


def task_config(data: Path, model: str, run_dir: Path, epochs: int, lr: float) -> dict:
    return {"model": model, "run_dir": str(run_dir), "seed": 0,
            "tasks": {"sentiment": {"kind": "classification", "train": str(data / "train.jsonl"),
                                    "dev": str(data / "dev.jsonl"), "test": str(data / "test.jsonl"),
                                    "max_length": 128, "head": {"layers": "top", "pooling": "cls"}}},
            "train": {"epochs": epochs, "batch_size": 32, "learning_rate": lr, "warmup_ratio": 0.06, "bf16": True,
                      "progress": False, "plot": False, "log_every": 50}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", type=Path)
    parser.add_argument("--pretrain-steps", type=int, default=1000)
    parser.add_argument("--train", type=int, default=4000)
    parser.add_argument("--general-steps", type=int, default=300)
    parser.add_argument("--copies", type=int, default=4, help="augmented copies of each training review")
    args = parser.parse_args()
    out = args.out.resolve()
    scripts = Path(__file__).resolve().parent
    if not (out / "corpus" / "meta.json").is_file():
        subprocess.run(["bash", str(scripts / "prepare_peoples_daily.sh"), str(out)], check=True)
    pretrained = out / "pretrain" / "model"
    if not (pretrained / "config.json").is_file():
        subprocess.run(["bertology", "pretrain", "chinese-wwm", "--corpus", str(out / "corpus"), "--tokenizer",
                        str(out / "tokenizer"), "--run-dir", str(out / "pretrain"), "--overwrite",
                        "--set", f"train.max_steps={args.pretrain_steps}", "--set", "train.progress=false",
                        "--set", f"train.eval_every={args.pretrain_steps}",
                        "--set", f"train.save_every={args.pretrain_steps}"], check=True)
    data = out / "data" / "sentiment"
    if not (data / "stats.json").is_file():
        write_task("chinese-sentiment", data, seed=0, limit={"train": args.train, "dev": 1000, "test": 2000})
    rows = []
    teacher = finetune_row(out / "teacher", task_config(data, str(pretrained), out / "teacher", 2, 1e-4))
    rows.append(("teacher: our character BERT (4 x 256), fine-tuned", teacher))
    general = out / "general"
    distill_row(general, [f"teacher={pretrained}", f"corpus={out / 'corpus'}", "max_length=128",
                          f"train.max_steps={args.general_steps}", "train.progress=false", "train.plot=false",
                          "train.save_every=0", *[f"student.size.{k}={v}" for k, v in STUDENT.items()]],
                recipe="tinybert-general")
    budget = sum(TASK_EPOCHS.values())
    random_dir = out / "random-student"
    if not (random_dir / "config.json").is_file():
        torch.manual_seed(0)
        encoder = load(pretrained)
        encoder = getattr(encoder, "bert", encoder)
        type(encoder)(encoder.config.replace(**STUDENT)).save_pretrained(random_dir)
        Tokenizer.from_pretrained(pretrained).save_pretrained(random_dir)
    rows.append(("student fine-tuned directly, random init",
                 finetune_row(out / "direct-random", task_config(data, str(random_dir), out / "direct-random",
                                                                 budget, STUDENT_LR))))
    rows.append(("student fine-tuned directly, general-distilled init",
                 finetune_row(out / "direct-general", task_config(data, str(general / "model"),
                                                                  out / "direct-general", budget, STUDENT_LR))))
    common = [f"teacher={out / 'teacher' / 'model'}", f"task.train={data / 'train.jsonl'}",
              f"task.test={data / 'test.jsonl'}", "task.max_length=128", "train.progress=false", "train.plot=false",
              "train.log_every=50", f"phase_train.intermediate.epochs={TASK_EPOCHS['intermediate']}",
              f"phase_train.prediction.epochs={TASK_EPOCHS['prediction']}",
              f"phase_train.intermediate.learning_rate={STUDENT_LR}",
              f"phase_train.prediction.learning_rate={STUDENT_LR}", "seed=0"]
    rows.append(("task distillation only (random init)",
                 distill_row(out / "task-only", [*common, *[f"student.size.{k}={v}" for k, v in STUDENT.items()]])))
    rows.append(("general + task distillation (uniform map)",
                 distill_row(out / "general-task", [*common, "student.init=pretrained",
                                                    f"student.model={general / 'model'}"])))
    for layer_map in ("top", "bottom"):
        rows.append((f"general + task distillation ({layer_map} map)",
                     distill_row(out / f"general-task-{layer_map}",
                                 [*common, "student.init=pretrained", f"student.model={general / 'model'}",
                                  f"layer_map={layer_map}"])))
    # augmentation: the pretrained teacher's own masked-LM head proposes characters in context; every phase
    # keeps the optimizer steps of the rows above, so only the data differs
    steps = {phase: epochs * -(-args.train // 32) for phase, epochs in TASK_EPOCHS.items()}
    rows.append((f"general + task distillation with augmentation ({args.copies} copies)",
                 distill_row(out / "general-task-augmented",
                             [*common, "student.init=pretrained", f"student.model={general / 'model'}",
                              "augment.enabled=true", f"augment.model={pretrained}", f"augment.copies={args.copies}",
                              "augment.vectors=teacher",
                              *[f"phase_train.{phase}.max_steps={n}" for phase, n in steps.items()]])))
    write_table(out, f"Chinese sentiment, {args.train} training / 1,000 dev / 2,000 test reviews; teacher "
                     f"pretrained {args.pretrain_steps} steps; general distillation {args.general_steps} steps on "
                     "People's Daily", rows)


if __name__ == "__main__":
    main()
