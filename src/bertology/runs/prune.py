"""`bertology prune`'s pipeline: measure head importance on task data, drop layers, remove heads and
feed-forward neurons from the matrices, optionally fine-tune to recover, save the smaller model and report.

`PruneRun` holds what the command line gives; `prune(run)` does the work (the CLI only parses).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ConfigError

logger = logging.getLogger("bertology")


@dataclass
class PruneRun:
    model: str
    out: str
    data: str
    heads: str | None = None
    by: str = "importance"
    per_layer: bool = False
    neurons: float | None = None
    neurons_by: str = "gradient"
    drop_layers: str | None = None
    recover_epochs: int = 0
    train: str | None = None
    learning_rate: float = 2e-5
    test: str | None = None
    task: str | None = None
    batch_size: int = 32
    max_batches: int = 0
    seed: int = 0
    speed: bool = True
    device: str | None = None


def _heads_amount(text: str) -> float | int:
    try:
        value = float(text)
    except ValueError:
        raise ConfigError(f"--heads {text!r}: give a count (24) or a fraction below 1 (0.3)") from None
    if value < 0 or (value >= 1 and value != int(value)):
        raise ConfigError(f"--heads {text!r}: give a count (24) or a fraction below 1 (0.3)")
    return value if value < 1 else int(value)


def _plan_on_config(args: PruneRun, amount: float | int) -> None:
    """Plan the head pruning on the model's config alone (every head scored alike), so a request no layer
    can meet is refused, naming the layer, before importance is measured or anything is written."""
    import torch

    from ..compression.pruning import plan_head_pruning
    from ..compression.pruning.importance import HeadImportance
    from ..compression.pruning.layers import layers_to_keep
    from ..models.pretrained import read_config

    folder = Path(args.model) / "encoder"
    if not (folder / "config.json").is_file():
        return  # an adapter model or a damaged folder: the run itself says what is wrong
    config = read_config(folder)
    if args.drop_layers:
        config = config.select_layers(layers_to_keep(args.drop_layers, config.num_hidden_layers))
    scores = torch.full((config.num_hidden_layers, config.num_attention_heads), float("nan"))
    for layer in range(config.num_hidden_layers):
        scores[layer, config.heads_of(layer)] = 0.0
    plan_head_pruning(HeadImportance(scores), amount, per_layer=args.per_layer)


def check(args: PruneRun) -> None:
    """Every argument check, before anything is read or written."""
    if args.recover_epochs < 0:
        raise ConfigError(f"--recover-epochs must be >= 0, got {args.recover_epochs}")
    if args.recover_epochs and not args.train:
        raise ConfigError("--recover-epochs needs --train FILE (the data to recover on)")
    if args.neurons is not None and not 0 <= args.neurons < 1:
        raise ConfigError(f"--neurons must be a fraction in [0, 1), got {args.neurons}")
    if args.heads is not None:
        _plan_on_config(args, _heads_amount(args.heads))
    if args.batch_size < 1 or args.max_batches < 0:
        raise ConfigError("--batch-size must be >= 1 and --max-batches >= 0")
    for flag, value in (("model", args.model), ("--data", args.data), ("--train", args.train), ("--test", args.test)):
        if value and not Path(value).exists():
            raise ConfigError(f"{flag}: {value}: no such file or folder")


def _metric(session: Any, test: Any) -> tuple[str | None, float | None]:
    if test is None:
        return None, None
    metrics = session.evaluate(test)
    name = "accuracy" if "accuracy" in metrics else next(iter(metrics))
    return f"test {name}", float(metrics[name])


def _recover(session: Any, train_file: str, folder: Path, args: PruneRun) -> int:
    """Fine-tune the pruned model (all of it) on `train_file`; returns the steps taken."""
    from ..finetuning.multitask import TaskCollate
    from ..training import TrainConfig, Trainer

    data = session.read(train_file, "train")
    features = data.features["train"]
    config = TrainConfig(epochs=args.recover_epochs, batch_size=min(args.batch_size, len(features)),
                         learning_rate=args.learning_rate, seed=args.seed, progress=False, plot=False,
                         device=args.device or "cpu", log_every=max(1, len(features) // args.batch_size))
    trainer = Trainer(session.model, features, config, folder, collate=TaskCollate(session.collate, session.name))
    result = trainer.train()
    session.model.eval()
    return result.step


def prune(args: PruneRun) -> dict[str, Any]:
    """Prune, recover, save, report; returns the summary written to prune_summary.json."""
    import torch

    from ..compression.pruning import (
        drop_layers,
        head_importance,
        heads_left,
        neuron_importance,
        plan_head_pruning,
        plan_neuron_pruning,
        prune_heads,
        prune_neurons,
        random_head_importance,
    )
    from ..compression.pruning._model import encoder_of
    from ..compression.report import CompressionReport, count_parameters, measure_variant
    from ..finetuning.model import TaskModel
    from ..finetuning.session import load_for_inference
    from ..utils.io import atomic_write

    check(args)
    amount = _heads_amount(args.heads) if args.heads is not None else None
    out = Path(args.out)
    device = args.device or "cpu"
    session = load_for_inference(args.model, args.task, device=device)
    original = session.model
    encoder_of(original)  # refuse ALBERT and composite encoders before any work
    data = session.read(args.data, "data")
    test = session.read(args.test, "test") if args.test else None
    seq = min(128, original.encoder.config.max_position_embeddings)

    def measure(name: str, model: TaskModel, folder: Path | None, notes: str = "") -> Any:
        metric_name, metric = _metric(session, test)
        encoder = model.encoder.eval()
        return measure_variant(name, encoder, vocab_size=encoder.config.vocab_size, folder=folder,
                               metric_name=metric_name, metric=metric, time_speed=args.speed,
                               model_call=lambda ids: encoder(ids, torch.ones_like(ids)), seq=seq, repeats=3,
                               notes=notes)

    report = CompressionReport(reference="original", title="Pruning report")
    report.add(measure("original", original, Path(args.model)))
    summary: dict[str, Any] = {"model": str(args.model), "parameters_before": count_parameters(original.encoder)}

    model = original
    if args.drop_layers:
        depth = model.encoder.config.num_hidden_layers
        model = drop_layers(model, args.drop_layers)
        session.model = model
        summary["dropped_layers"] = {"spec": args.drop_layers, "depth_before": depth,
                                     "depth_after": model.encoder.config.num_hidden_layers}
    torch.manual_seed(args.seed)
    batches = session.batches(data, args.batch_size, args.max_batches)
    importance = head_importance(model, batches)
    plan = None
    if amount is not None:  # planned (and refused, naming the layer) before anything is written
        ranking = importance if args.by == "importance" else random_head_importance(model, args.seed)
        plan = plan_head_pruning(ranking, amount, per_layer=args.per_layer)
    importance.write(out)
    print(importance.format())
    if plan is not None:
        prune_heads(model, plan)
        summary["pruned_heads"] = {str(k): v for k, v in plan.items()}
        summary["heads_by"] = args.by
        summary["heads_left"] = {str(k): v for k, v in heads_left(model).items()}
    if args.neurons:
        scores = neuron_importance(model, batches if args.neurons_by == "gradient" else None, method=args.neurons_by)
        neuron_plan = plan_neuron_pruning(scores, args.neurons)
        prune_neurons(model, neuron_plan)
        summary["neurons_by"] = args.neurons_by
        summary["intermediate_sizes"] = model.encoder.config.intermediate_sizes
    if args.recover_epochs:
        summary["recovery_steps"] = _recover(session, args.train, out / "recovery", args)
    model.eval()
    model.save_encoder = True  # the pruned encoder differs from any base folder: always save it
    model.save_pretrained(out / "model")
    session.tokenizer.save_pretrained(out / "model" / "tokenizer")
    reloaded = TaskModel.from_pretrained(out / "model")  # the folder must load at its new size
    summary["parameters_after"] = count_parameters(reloaded.encoder)
    if summary["parameters_after"] != count_parameters(model.encoder):
        raise ConfigError(f"{out / 'model'}: reloaded with {summary['parameters_after']} parameters, saved "
                          f"{count_parameters(model.encoder)}")
    notes = ", ".join(k for k in ("dropped_layers", "pruned_heads", "intermediate_sizes") if k in summary)
    report.add(measure("pruned", model, out / "model", notes=f"removed: {notes or 'nothing'}"
                       + (f"; recovered {args.recover_epochs} epoch(s)" if args.recover_epochs else "")))
    report.write(out)
    with atomic_write(out / "prune_summary.json") as handle:
        json.dump(summary, handle, indent=2)
        handle.write("\n")
    print(report.render_terminal())
    return summary
