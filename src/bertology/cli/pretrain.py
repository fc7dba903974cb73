"""`bertology pretrain`: a pretraining run from a YAML config or a named recipe."""

from __future__ import annotations

import argparse

from ..device import add_device_flag


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("pretrain", help="pretrain an encoder from a YAML config or a recipe",
                       description="Pretrain from CONFIG (a YAML file, or a recipe name: see --list-recipes). "
                                   "Writes a run folder with config.yaml, metrics.jsonl, checkpoints/, "
                                   "curves.png, report.md and the model in Hugging Face format. A folder that "
                                   "holds another run is refused unless --resume or --overwrite; paths in a "
                                   "config file are relative to the file, on the command line to the working "
                                   "directory.")
    p.add_argument("config", nargs="?", help="YAML file or recipe name")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a field, e.g. --set train.max_steps=200 --set masking.rate=0.2 (repeatable)")
    p.add_argument("--corpus", help="prepared corpus folder (same as --set corpus=...)")
    p.add_argument("--tokenizer", help="tokenizer folder (same as --set tokenizer=...)")
    p.add_argument("--run-dir", help="run folder (same as --set run_dir=...)")
    add_device_flag(p, "the config's train.device, auto: CUDA when present, else the CPU; "
                       "same as --set train.device=...")
    add_run_folder_flags(p)
    p.add_argument("--list-recipes", action="store_true", help="print the recipe names and exit")
    p.set_defaults(run=run)


def add_run_folder_flags(p: argparse.ArgumentParser) -> None:
    """--resume, --overwrite and --force: what to do with a run folder that already holds a run."""
    p.add_argument("--resume", action="store_true",
                   help="continue the run in the run folder from its newest checkpoint; refused if the config "
                        "changed in what decides the numbers (batch size, masking, model, seed, ...)")
    p.add_argument("--overwrite", action="store_true",
                   help="move a run already in the run folder aside (to RUN_DIR.old-DATE-TIME) and start afresh")
    p.add_argument("--force", action="store_true",
                   help="with --resume: continue even though the config changed in what decides the numbers")


def run(args: argparse.Namespace) -> int:
    from ..device import resolve_device
    from ..runs.guard import claim_run_folder
    from ..runs.pretrain import Pretraining, load_config, recipe_names, run_config

    if args.list_recipes:
        print("\n".join(recipe_names()))
        return 0
    if not args.config:
        raise ValueError("give a config file or a recipe name (see --list-recipes)")
    if args.device:
        resolve_device(args.device)  # a device that is not present: one error before anything is loaded
    overrides = list(args.overrides) + ([f"train.device={args.device}"] if args.device else [])
    for key in ("corpus", "tokenizer", "run_dir"):
        value = getattr(args, key)
        if value:
            overrides.append(f"{key}={value}")
    config = load_config(args.config, overrides)
    with claim_run_folder(config.run_dir, None, run_config(config), args.resume, args.overwrite, args.force):
        result = Pretraining.build(config).run(resume=args.resume)
    print(f"{result.stopped} at step {result.step}; run folder {result.run_dir}")
    return 0
