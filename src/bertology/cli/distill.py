"""`bertology distill`: TinyBERT (general or task stage) or DistilBERT from a YAML config or a recipe."""

from __future__ import annotations

import argparse

from ..device import add_device_flag
from .pretrain import add_run_folder_flags


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("distill", help="distil a smaller student from a teacher (TinyBERT, DistilBERT)",
                       description="Distil from CONFIG (a YAML file, or a recipe: tinybert-general, tinybert-task, "
                                   "distilbert; see --list-recipes). Writes a run folder with a sub-folder per "
                                   "phase (config.yaml, metrics.jsonl, checkpoints/), model/ (the student), "
                                   "report.md, results.json and metric_vs_speed.png comparing teacher and "
                                   "student. A folder that holds another run is refused unless --resume or "
                                   "--overwrite.")
    p.add_argument("config", nargs="?", help="YAML file or recipe name")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a field, e.g. --set teacher=runs/ft/model --set student.size.num_hidden_layers=4")
    p.add_argument("--teacher", help="teacher model folder (same as --set teacher=...)")
    p.add_argument("--corpus", help="prepared corpus folder (same as --set corpus=...)")
    p.add_argument("--run-dir", help="run folder (same as --set run_dir=...)")
    add_device_flag(p, "the config's train.device; same as --set train.device=...")
    add_run_folder_flags(p)
    p.add_argument("--list-recipes", action="store_true", help="print the recipe names and exit")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from ..device import resolve_device
    from ..runs.config import recipe_names
    from ..runs.distill import RECIPE_FOLDER, Distilling, load_config, run_config
    from ..runs.guard import claim_run_folder

    if args.list_recipes:
        print("\n".join(recipe_names(RECIPE_FOLDER)))
        return 0
    if not args.config:
        raise ValueError("give a config file or a recipe name (see --list-recipes)")
    if args.device:
        resolve_device(args.device)
    overrides = list(args.overrides) + ([f"train.device={args.device}"] if args.device else [])
    for key in ("teacher", "corpus", "run_dir"):
        value = getattr(args, key)
        if value:
            overrides.append(f"{key}={value}")
    config = load_config(args.config, overrides)
    distilling = Distilling(config)  # every check (vocabularies, layer map, labels) before the folder is claimed
    with claim_run_folder(config.run_dir, lambda stored: stored.get("distill"), run_config(config)["distill"],
                          args.resume, args.overwrite, args.force):
        summary = distilling.run(resume=args.resume)
    print(f"distilled: student {summary['student_parameters']:,} parameters, teacher "
          f"{summary['teacher_parameters']:,}; run folder {config.run_dir}")
    return 0
