"""A fine-tuning run from one YAML file: encoder, tasks and their data, method, regularizers, training.

Every choice the literature compares is one field: `method` (full tuning, frozen features, adapters,
LoRA), each head's `layers` and `pooling`, `layerwise_lr_decay`, `unfreezing`, `adversarial`, `mixout`,
`self_ensemble` and `self_distillation`; `stages` makes two-stage (intermediate task first) training, and
several tasks in one stage make multi-task training with a configurable task sampling.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from ..assets import model_path
from ..errors import BertologyError, ConfigError
from ..models import load
from ..tokenization import load_tokenizer
from ..training import TrainConfig, Trainer
from ..training.callbacks import Callback
from ..utils.io import atomic_write
from ..utils.table import format_table
from ..utils.typed import apply_overrides, from_mapping, load_yaml
from ..finetuning.features import Collator
from ..finetuning.model import TaskModel
from ..finetuning.multitask import MultiTaskBatches, TaskCollate
from ..finetuning.predict import cache_features, evaluate_task
from ..finetuning.taskdata import TaskData, head_config, read_task, task_config

logger = logging.getLogger("bertology")

METHODS = ("full", "frozen", "adapter", "lora")
SAMPLINGS = ("proportional", "uniform", "temperature")


@dataclass
class FinetuneConfig:
    model: str = ""
    tokenizer: str | None = None
    run_dir: str = "runs/finetune"
    seed: int = 42
    tasks: dict = field(default_factory=dict)
    #: task names per stage, trained in order (two-stage: [[intermediate], [target]]); default one stage
    stages: list | None = None
    method: str = "full"
    #: adapter/LoRA options (finetuning.peft.PeftConfig fields)
    peft: dict = field(default_factory=dict)
    #: multi-task sampling of batches: proportional to size, uniform over tasks, or size ** (1 / temperature)
    sampling: str = "proportional"
    temperature: float = 2.0
    layerwise_lr_decay: float = 1.0
    #: peak learning rate of the task heads (a new head often wants more than the pretrained encoder);
    #: default train.learning_rate
    head_learning_rate: float | None = None
    #: "none", "gradual" (ULMFiT) or "sequential" (chain-thaw); unfreeze_every in steps (0: one epoch)
    unfreezing: str = "none"
    unfreeze_every: int = 0
    #: {"name": "fgm" | "pgd" | "freelb" | "smart", ...options} or null
    adversarial: dict | None = None
    mixout: float = 0.0
    #: {"every": steps, "last": snapshots} parameter averaging (self-ensemble) or null
    self_ensemble: dict | None = None
    #: weight of the self-distillation loss (teacher: the averaged parameters); 0 disables
    self_distillation: float = 0.0
    #: bad data rows: "raise" (stop with file and line) or "skip" (count and report)
    on_error: str = "raise"
    train: dict = field(default_factory=dict)

    def validate(self, where: str = "") -> None:
        if not self.model:
            raise ConfigError(f"{where}field 'model' is required (an encoder folder)")
        if not self.tasks:
            raise ConfigError(f"{where}field 'tasks' needs at least one task")
        for name, allowed, value in (("method", METHODS, self.method), ("sampling", SAMPLINGS, self.sampling),
                                     ("unfreezing", ("none", "gradual", "sequential"), self.unfreezing),
                                     ("on_error", ("raise", "skip"), self.on_error)):
            if value not in allowed:
                raise ConfigError(f"{where}field '{name}' must be one of {list(allowed)}, got {value!r}")
        for stage in self.stages or []:
            unknown = [t for t in stage if t not in self.tasks]
            if unknown:
                raise ConfigError(f"{where}stages name unknown task(s) {unknown}; tasks are {list(self.tasks)}")
        if self.mixout and self.method in ("adapter", "lora"):
            raise ConfigError(f"{where}mixout mixes tuned weights with the pretrained ones; with method "
                              f"{self.method!r} the encoder's weights do not change, so it has nothing to do")
        if self.method != "full" and self.unfreezing != "none":
            raise ConfigError(f"{where}unfreezing applies to full tuning, not method {self.method!r}")
        if self.adversarial is not None:
            self.adversarial_callback()  # a typo in the method or its options fails now, not after loading data
            if self.method == "frozen":
                raise ConfigError(f"{where}adversarial training perturbs the encoder's input, but method 'frozen' "
                                  "trains on cached encoder outputs; use method full, adapter or lora")

    def adversarial_callback(self) -> Callback:
        """The configured adversarial method as a training-loop callback."""
        from ..finetuning.adversarial import build_adversarial

        options = dict(self.adversarial or {})
        return build_adversarial(options.pop("name", "fgm"), **options)


def load_config(source: str | Path, overrides: list[str] | None = None) -> FinetuneConfig:
    path = Path(source)
    if not path.is_file():
        raise ConfigError(f"{path}: no such config file")
    try:
        data = load_yaml(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({exc})") from None
    data = apply_overrides(data, overrides or [])
    config = from_mapping(FinetuneConfig, data, f"{path}: ")
    base = path.parent
    for key in ("model", "tokenizer"):  # a folder beside the config wins over one in the working directory
        value = getattr(config, key)
        if value and not Path(value).is_absolute() and (base / value).exists():
            setattr(config, key, str(base / value))
        elif value:
            setattr(config, key, str(model_path(value)))
    for task in config.tasks.values():  # data paths are relative to the config file
        for key in ("train", "dev", "test", "labels"):
            if isinstance(task, dict) and task.get(key) and not Path(task[key]).is_absolute():
                task[key] = str(base / task[key])
    config.validate(f"{path}: ")
    return config


def _first(items: list) -> Any:
    return items[0]


class Finetuning:
    """Builds the model, data and callbacks from a FinetuneConfig and runs each stage with the Trainer."""

    def __init__(self, config: FinetuneConfig) -> None:
        self.config = config
        self.tokenizer = load_tokenizer(config.tokenizer or config.model)
        self.tasks = {name: read_task(name, task_config(name, spec), self.tokenizer, config.on_error, config.seed)
                      for name, spec in config.tasks.items()}
        encoder = load(config.model)
        encoder = getattr(encoder, "bert", encoder)  # a head model's encoder
        self.model = TaskModel(encoder, {name: head_config(task) for name, task in self.tasks.items()})
        self.model.base_path = str(Path(config.model).resolve())
        self.model.task_options = {name: {k: v for k, v in dataclasses.asdict(task.config).items()
                                          if k in ("columns", "max_length", "doc_stride", "max_query_length", "scheme")}
                                   for name, task in self.tasks.items()}
        self.collators = {name: Collator(self.tokenizer.pad_token_id, task.config.kind)
                          for name, task in self.tasks.items()}
        self.results: list[dict[str, Any]] = []

    # ----------------------------------------------------------------------------------- methods
    def _prepare_method(self) -> None:
        config, model = self.config, self.model
        if config.method in ("adapter", "lora"):
            from ..finetuning.peft import PeftConfig, add_adapter, freeze_except_adapters

            options = dict(config.peft)
            if options.setdefault("kind", config.method) != config.method:
                raise ConfigError(f"peft.kind {options['kind']!r} contradicts method {config.method!r}")
            add_adapter(model.encoder, "task", PeftConfig.from_dict(options, "peft: "))
            freeze_except_adapters(model.encoder, "task")
            model.save_encoder = False
        elif config.method == "frozen":
            model.encoder.requires_grad_(False)
            model.save_encoder = False
        if config.mixout:
            from ..finetuning.regularizers import apply_mixout

            apply_mixout(model.encoder, p=config.mixout)

    def _callbacks(self) -> list[Callback]:
        config = self.config
        callbacks: list[Callback] = []
        if config.unfreezing != "none":
            from ..finetuning.schedules import GradualUnfreezing, SequentialUnfreezing

            kind = GradualUnfreezing if config.unfreezing == "gradual" else SequentialUnfreezing
            callbacks.append(kind(every=config.unfreeze_every or None))
        if config.adversarial:
            callbacks.append(config.adversarial_callback())
        average = None
        if config.self_ensemble or config.self_distillation:
            from ..finetuning.ensemble import ParameterAverage

            average = ParameterAverage(**(config.self_ensemble or {}))
            callbacks.append(average)
        if config.self_distillation:
            from ..finetuning.ensemble import SelfDistillation

            callbacks.append(SelfDistillation(average, weight=config.self_distillation))
        self.average = average
        return callbacks

    def _param_groups(self, train: TrainConfig) -> list[dict] | None:
        config = self.config
        if config.layerwise_lr_decay == 1.0 and config.unfreezing == "none" and config.head_learning_rate is None:
            return None
        from ..finetuning.schedules import layerwise_lr_groups

        groups = layerwise_lr_groups(self.model, train.learning_rate, config.layerwise_lr_decay,
                                     train.weight_decay, include_frozen=config.unfreezing != "none")
        if config.head_learning_rate is not None:
            top = max(group["depth"] for group in groups)  # heads (and anything above the encoder layers)
            for group in groups:
                if group["depth"] == top:
                    group["lr"] = config.head_learning_rate
        return groups

    # ------------------------------------------------------------------------------------ running
    def run(self, resume: bool = False) -> list[dict[str, Any]]:
        config = self.config
        self._prepare_method()
        stages = config.stages or [list(self.tasks)]
        run_dir = Path(config.run_dir)
        for index, stage in enumerate(stages):
            stage_dir = run_dir if len(stages) == 1 else run_dir / f"stage{index + 1}-{'+'.join(stage)}"
            self._run_stage([self.tasks[name] for name in stage], stage_dir, resume)
        self.model.save_pretrained(run_dir / "model")
        self.tokenizer.save_pretrained(run_dir / "model" / "tokenizer")
        self.write_report(run_dir)
        return self.results

    def _run_stage(self, tasks: list[TaskData], stage_dir: Path, resume: bool) -> None:
        config = self.config
        train = TrainConfig.from_dict({"seed": config.seed, **config.train}, "train: ")
        start = time.perf_counter()
        cached: dict[str, list[dict]] | None = None
        self.cached_dev: dict[str, list[dict]] = {}
        if config.method == "frozen":  # the encoder never changes: run it once, train only the heads
            cached, self.cached_dev = {}, {}
            for task in tasks:
                collate = self.collators[task.name]
                cached[task.name] = cache_features(self.model, task.name, task.features["train"], collate,
                                                   train.batch_size, train.bf16, train.progress)
                if "dev" in task.features:
                    self.cached_dev[task.name] = cache_features(self.model, task.name, task.features["dev"],
                                                                collate, train.batch_size, train.bf16, False)
            logger.info("cached frozen features in %.1f s", time.perf_counter() - start)
        with_dev = [t for t in tasks if "dev" in t.features]
        eval_data = eval_collate = None
        if len(tasks) == 1 and cached is None:
            task = tasks[0]
            train_data, collate = task.features["train"], TaskCollate(self.collators[task.name], task.name)
            if with_dev:
                eval_data, eval_collate = task.features["dev"], collate
        else:
            train_data = MultiTaskBatches(tasks, self.collators, train.batch_size, config.sampling,
                                          config.temperature, config.seed, cached)
            collate = _first
            if with_dev:
                eval_data = MultiTaskBatches(with_dev, self.collators, train.batch_size, "proportional",
                                             config.temperature, config.seed, self.cached_dev or None,
                                             split="dev", drop_last=False)
                eval_collate = _first
            train = dataclasses.replace(train, batch_size=1)
        if with_dev and "eval_every" not in config.train:  # default: score the dev set after every epoch
            per_epoch = len(train_data) // train.batch_size // train.gradient_accumulation
            train = dataclasses.replace(train, eval_every=max(1, per_epoch))
        trainer = Trainer(self.model, train_data, train, stage_dir, collate=collate, eval_data=eval_data,
                          eval_collate=eval_collate, run_config={"finetune": dataclasses.asdict(config)},
                          callbacks=self._callbacks(), param_groups=self._param_groups(train),
                          evaluator=self._evaluator(with_dev, train.batch_size) if with_dev else None)
        result = trainer.train(resume=resume)
        seconds = time.perf_counter() - start
        if result.stopped == "interrupted":  # scores of a half-trained model must not pass for results
            raise BertologyError(f"training was interrupted at step {result.step} (checkpoint: "
                                 f"{result.last_checkpoint}); run the same command with --resume to finish it")
        if self.average is not None and config.self_ensemble:
            from ..finetuning.ensemble import apply_average

            apply_average(self.model, self.average.averaged_state())
        trainable = sum(p.numel() for p in self.model.parameters() if p.requires_grad)
        for task in tasks:
            for split_name in ("dev", "test"):
                if split_name in task.features:
                    metrics = evaluate_task(self.model, task, split_name, self.collators[task.name],
                                            train.batch_size or 32)
                    self.results.append({"task": task.name, "split": split_name, **metrics,
                                         "trainable_parameters": trainable, "seconds": round(seconds, 1),
                                         "steps": result.step})

    def _evaluator(self, tasks: list[TaskData], batch_size: int) -> Callable[[TaskModel], dict[str, float]]:
        """Dev-set scores that are not means over batches (F1, correlations, EM), per task."""
        batch_size = max(batch_size, 32)

        def evaluator(model: TaskModel) -> dict[str, float]:
            values = {}
            for task in tasks:
                metrics = evaluate_task(model, task, "dev", self.collators[task.name], batch_size,
                                        features=self.cached_dev.get(task.name))
                prefix = f"{task.name}/" if len(tasks) > 1 else ""
                values.update({f"{prefix}{k}": v for k, v in metrics.items()})
            return values
        return evaluator

    def write_report(self, run_dir: Path) -> Path:
        """report.md and results.json in the run folder, and the same table in the terminal."""
        if not self.results:
            return run_dir
        info = ("trainable_parameters", "seconds", "steps")
        headers = ["task", "split", "scores", "trainable parameters", "seconds", "steps"]
        rows = [[r["task"], r["split"],
                 ", ".join(f"{k} {v:.4f}" for k, v in r.items() if k not in ("task", "split", *info)),
                 f"{r['trainable_parameters']:,}", f"{r['seconds']:.1f}", str(r["steps"])] for r in self.results]
        lines = [f"# Fine-tuning report: {run_dir}", "", f"- encoder: {self.config.model}",
                 f"- method: {self.config.method}", "", format_table(headers, rows, markdown=True), ""]
        for task in self.tasks.values():
            if any(task.skipped.values()):
                lines.append(f"- task {task.name}: skipped bad rows {task.skipped}")
        with atomic_write(run_dir / "report.md") as handle:
            handle.write("\n".join(lines))
        with atomic_write(run_dir / "results.json") as handle:
            json.dump(self.results, handle, indent=2)
        print(format_table(headers, rows))
        return run_dir / "report.md"


__all__ = ["FinetuneConfig", "Finetuning", "MultiTaskBatches", "TaskConfig", "TaskData", "load_config"]
