"""A fine-tuning run from one YAML file: encoder, tasks and their data, method, regularizers, training.

Every choice the literature compares is one field: `method` (full tuning, frozen features, adapters,
LoRA), each head's `layers` and `pooling`, `layerwise_lr_decay`, `unfreezing` and the named
`regularizers` (adversarial training, mixout, self-ensemble, self-distillation, and any registered one);
`stages` makes two-stage (intermediate task first) training, and several tasks in one stage make
multi-task training with a configurable task sampling. Every section is a typed dataclass parsed when the
file is loaded, so a typo or a bad value fails at once, naming the file, the key path and the nearest
valid key or choice.

Layer-wise learning-rate decay and gradual/sequential unfreezing stay fields of their own rather than
regularizers: they shape the optimizer's parameter groups (with `head_learning_rate`), which the
regularizer protocol (a model transform, callbacks, a last step) does not reach.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from ..assets import model_path
from ..errors import ConfigError, RunInterrupted
from ..finetuning.features import collator_for
from ..finetuning.model import TaskModel, tokenizer_folder
from ..finetuning.multitask import MultiTaskBatches, TaskCollate
from ..finetuning.peft import PeftConfig
from ..finetuning.predict import cache_features, evaluate_task, feature_length
from ..finetuning.regularization import REGULARIZERS, Regularizer, Stage, build_regularizer, check_adversarial
from ..finetuning.taskdata import TaskConfig, TaskData, fold_kind_options, head_config, read_task
from ..models import load
from ..tokenization import load_tokenizer
from ..training import TrainConfig, Trainer
from ..training.callbacks import Callback
from ..training.seeding import seed_everything
from ..utils.io import atomic_write
from ..utils.table import format_table
from ..utils.typed import Where, apply_overrides, as_where, check_fields, parse, to_plain
from .config import load_plugins, read_source, rebase_paths

logger = logging.getLogger("bertology")

METHODS = ("full", "frozen", "adapter", "lora")
SAMPLINGS = ("proportional", "uniform", "temperature")


@dataclass
class FinetuneTrainConfig(TrainConfig):
    """The training loop of a fine-tuning run: `seed` null is the run's seed, `eval_every` null scores the dev
    sets once per epoch (when a task has one)."""

    seed: int | None = None
    eval_every: int | None = None

    def validate(self, where: str = "") -> None:
        self.resolve(0, 0, where)

    def resolve(self, seed: int, eval_every: int, where: str = "") -> TrainConfig:
        """The TrainConfig of a stage: the run's seed and per-epoch evaluation where this one leaves them open."""
        values = {f.name: getattr(self, f.name) for f in dataclasses.fields(TrainConfig)}
        values["seed"] = seed if self.seed is None else self.seed
        values["eval_every"] = eval_every if self.eval_every is None else self.eval_every
        return parse(TrainConfig, values, where)


@dataclass
class FinetuneConfig:
    """One fine-tuning run: the encoder, its tasks, the method, regularizers and the training loop."""

    model: str = ""
    tokenizer: str | None = None
    #: relative to the config file's folder, as the tasks' data paths are
    run_dir: str = field(default="runs/finetune", metadata={"path": True})
    seed: int = 42
    tasks: dict[str, TaskConfig] = field(default_factory=dict)
    #: task names per stage, trained in order (two-stage: [[intermediate], [target]]); default one stage
    stages: list[list[str]] | None = None
    method: Literal["full", "frozen", "adapter", "lora"] = "full"
    #: adapter/LoRA options (its kind defaults to the method's)
    peft: PeftConfig | None = None
    #: multi-task sampling of batches: proportional to size, uniform over tasks, or size ** (1 / temperature)
    sampling: Literal["proportional", "uniform", "temperature"] = "proportional"
    temperature: float = 2.0
    layerwise_lr_decay: float = 1.0
    #: peak learning rate of the task heads (a new head often wants more than the pretrained encoder);
    #: default train.learning_rate
    head_learning_rate: float | None = None
    #: "none", "gradual" (ULMFiT) or "sequential" (chain-thaw); unfreeze_every in steps (0: one epoch)
    unfreezing: Literal["none", "gradual", "sequential"] = "none"
    unfreeze_every: int = 0
    #: name -> options of each regularizer (fgm, pgd, freelb, smart, mixout, self_ensemble, self_distillation, ...)
    regularizers: dict[str, Any] = field(default_factory=dict)
    #: older spellings, moved into `regularizers` when the config is validated:
    #: {"name": "fgm" | "pgd" | "freelb" | "smart", ...options} or null
    adversarial: dict | None = None
    #: Mixout probability (0: none)
    mixout: float = 0.0
    #: {"every": steps, "last": snapshots, ...} parameter averaging (self-ensemble) or null
    self_ensemble: dict | None = None
    #: weight of the self-distillation loss (teacher: the averaged parameters); 0 disables
    self_distillation: float = 0.0
    #: bad data rows: "raise" (stop with file and line) or "skip" (count and report)
    on_error: Literal["raise", "skip"] = "raise"
    train: FinetuneTrainConfig = field(default_factory=FinetuneTrainConfig)

    def validate(self, where: str | Where = "") -> None:
        where = as_where(where)
        check_fields(self, where)
        if not self.model:
            raise ConfigError(f"{where}field 'model' is required (an encoder folder)")
        if not self.tasks:
            raise ConfigError(f"{where}field 'tasks' needs at least one task")
        self._check_stages(where)
        for name, ok, must in (("temperature", self.temperature > 0, "be positive"),
                               ("layerwise_lr_decay", 0 < self.layerwise_lr_decay <= 1, "lie in (0, 1]"),
                               ("head_learning_rate", self.head_learning_rate is None or self.head_learning_rate > 0,
                                "be positive or null"),
                               ("unfreeze_every", self.unfreeze_every >= 0, "be >= 0")):
            if not ok:
                raise ConfigError(f"{where}field '{name}' must {must}, got {getattr(self, name)!r}")
        if self.method != "full" and self.unfreezing != "none":
            raise ConfigError(f"{where}unfreezing applies to full tuning, not method {self.method!r}")
        if self.peft is not None and self.peft.kind not in (None, self.method) and self.method in ("adapter", "lora"):
            raise ConfigError(f"{where.child('peft')}field 'kind' {self.peft.kind!r} contradicts method "
                              f"{self.method!r}")
        self.regularizers = self._named_regularizers(where)
        for regularizer in self.build_regularizers():
            regularizer.check(self.method, where.child("regularizers").child(regularizer.name))

    def _check_stages(self, where: Where) -> None:
        for i, stage in enumerate(self.stages or []):
            if not isinstance(stage, list) or not all(isinstance(t, str) for t in stage):
                raise ConfigError(f"{where.child('stages').child(i)}a stage is a list of task names, got {stage!r}")
            unknown = [t for t in stage if t not in self.tasks]
            if unknown:
                raise ConfigError(f"{where}stages name unknown task(s) {unknown}; tasks are {list(self.tasks)}")

    def _named_regularizers(self, where: Where) -> dict[str, Any]:
        """`regularizers` with the older fields folded in, each options section parsed (and the old fields
        cleared, so validating again changes nothing)."""
        found = {name: (options, where.child("regularizers").child(name)) for name, options in self.regularizers.items()}

        def add(name: str, options: Any, at: Where) -> None:
            if name in found:
                raise ConfigError(f"{at}{name!r} is configured twice (also under regularizers)")
            found[name] = (options, at)

        if self.adversarial is not None:
            options = dict(self.adversarial)
            add(check_adversarial(options.pop("name", "fgm"), where.child("adversarial")), options,
                where.child("adversarial"))
        if self.mixout:
            add("mixout", {"p": self.mixout}, where.child("mixout"))
        if self.self_ensemble is not None:
            add("self_ensemble", self.self_ensemble, where.child("self_ensemble"))
        if self.self_distillation:
            add("self_distillation", {"weight": self.self_distillation}, where.child("self_distillation"))
        self.adversarial, self.mixout, self.self_ensemble, self.self_distillation = None, 0.0, None, 0.0
        for name in found:
            REGULARIZERS.entry(name, where.child("regularizers"))
        return {name: REGULARIZERS.options(name, options, at) for name, (options, at) in found.items()}

    def build_regularizers(self) -> list[Regularizer]:
        """The configured regularizers, in the order their callbacks run."""
        built = [build_regularizer(name, options) for name, options in self.regularizers.items()]
        return sorted(built, key=lambda r: (r.order, r.name))


def finetune_config(data: Any, where: str | Where = "", base: str | Path | None = None,
                    rebase: bool = True) -> FinetuneConfig:
    """A FinetuneConfig from plain data (a YAML file's, or a program's): every section parsed and checked.

    Task data paths and run_dir are relative to `base` (the config file's folder; `rebase` False when the
    caller already joined them, before applying overrides); `model` and `tokenizer` are a folder beside the
    config, else one relative to the working directory, else a registry alias (`minilm`).
    """
    if isinstance(data, dict) and isinstance(data.get("tasks"), dict):
        data = {**data, "tasks": {name: fold_kind_options(task) for name, task in data["tasks"].items()}}
    if rebase:
        data = rebase_paths(FinetuneConfig, data, base)
    config = parse(FinetuneConfig, data, where)
    for key in ("model", "tokenizer"):
        value = getattr(config, key)
        if value and base is not None and not Path(value).is_absolute() and (Path(base) / value).exists():
            setattr(config, key, str(Path(base) / value))
        elif value:
            setattr(config, key, str(model_path(value)))
    return config


def load_config(source: str | Path, overrides: list[str] | None = None) -> FinetuneConfig:
    """The config in YAML file `source`: `key.path=value` overrides applied, the modules its `plugins:` name
    imported (so the task kinds and regularizers they register can be named), then parsed."""
    data, label, base = read_source(source)
    data = rebase_paths(FinetuneConfig, data, base)  # the file's paths; override values stay the user's own
    data = apply_overrides(data, list(overrides or []))
    load_plugins(data.pop("plugins", None), Where(label).child("plugins"), base)
    return finetune_config(data, Where(label), base, rebase=False)


def run_config(config: FinetuneConfig) -> dict[str, Any]:
    """The config as the run folder's config.yaml holds it under `finetune` (paths absolute); `--resume`
    compares it with the stored one."""
    return rebase_paths(FinetuneConfig, to_plain(config), Path.cwd())


def _first(items: list) -> Any:
    return items[0]


def _trained_labels(model: TaskModel, config: FinetuneConfig, source: Path) -> dict[str, Any]:
    """A fine-tuned model trained further keeps its heads: every configured task must be one of them, of the
    same kind, and reads its labels in the head's order."""
    from ..finetuning.labels import LabelSet

    labels = {}
    for name, task in config.tasks.items():
        head = model.head_configs.get(name)
        if head is None:
            raise ConfigError(f"tasks.{name}: the fine-tuned model in {source} has heads {list(model.head_configs)}, "
                              f"not {name!r}; name the task as its head, or fine-tune from {source / 'encoder'} "
                              "to train a new head")
        if head.kind != task.kind:
            raise ConfigError(f"tasks.{name}: kind {task.kind!r}, but the fine-tuned head is {head.kind!r}")
        if head.labels:
            labels[name] = LabelSet(list(head.labels), source=f"the {name!r} head of {source}")
    return labels


class Finetuning:
    """Builds the model, data and callbacks from a FinetuneConfig and runs each stage with the Trainer."""

    def __init__(self, config: FinetuneConfig) -> None:
        config.validate()  # a config built in Python gets the checks (and the regularizer aliases) a file gets
        seed_everything(config.seed)  # before anything random is built: same config and seed, same run
        self.config = config
        source = Path(config.model)
        trained = TaskModel.from_pretrained(source) if (source / "task.json").is_file() else None
        self.tokenizer = load_tokenizer(config.tokenizer or (tokenizer_folder(source, trained.base_path) if trained
                                                             else config.model))
        labels = _trained_labels(trained, config, source) if trained is not None else {}
        self.tasks = {name: read_task(name, task, self.tokenizer, config.on_error, config.seed, labels.get(name))
                      for name, task in config.tasks.items()}
        if trained is not None:  # train a fine-tuned model further (recovery after pruning, QAT): its own heads
            self.model = trained
            encoder = trained.encoder
        else:
            encoder = load(config.model)
            encoder = getattr(encoder, "bert", encoder)  # a head model's encoder
            self.model = TaskModel(encoder, {name: head_config(task) for name, task in self.tasks.items()})
            self.model.base_path = str(Path(config.model).resolve())
            self.model.task_options = {name: task.config.saved_options() for name, task in self.tasks.items()}
        inputs = getattr(encoder, "token_inputs", ())
        self.collators = {name: collator_for(self.tokenizer, task.kind, inputs) for name, task in self.tasks.items()}
        self.regularizers = config.build_regularizers()
        self.results: list[dict[str, Any]] = []

    # ----------------------------------------------------------------------------------- methods
    def _prepare_method(self) -> None:
        config, model = self.config, self.model
        if config.method in ("adapter", "lora"):
            from ..finetuning.peft import add_adapter, freeze_except_adapters

            add_adapter(model.encoder, "task", (config.peft or PeftConfig()).for_kind(config.method))
            freeze_except_adapters(model.encoder, "task")
            model.save_encoder = False
        elif config.method == "frozen":
            model.encoder.requires_grad_(False)
            model.save_encoder = False
        for regularizer in self.regularizers:
            regularizer.transform(model)

    def _callbacks(self, stage: Stage) -> list[Callback]:
        config = self.config
        callbacks: list[Callback] = []
        if config.unfreezing != "none":
            from ..finetuning.schedules import GradualUnfreezing, SequentialUnfreezing

            kind = GradualUnfreezing if config.unfreezing == "gradual" else SequentialUnfreezing
            callbacks.append(kind(every=config.unfreeze_every or None))
        for regularizer in self.regularizers:
            callbacks += regularizer.callbacks(stage)
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
        train = config.train.resolve(config.seed, 0, "train: ")
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
            if with_dev:  # the dev-loss pass batches by length (longest first), as the scoring pass does
                eval_data = sorted(task.features["dev"], key=feature_length, reverse=True)
                eval_collate = collate
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
        if with_dev and config.train.eval_every is None:  # default: score the dev set after every epoch
            per_epoch = len(train_data) // train.batch_size // train.gradient_accumulation
            train = dataclasses.replace(train, eval_every=max(1, per_epoch))
        stage = Stage()
        trainer = Trainer(self.model, train_data, train, stage_dir, collate=collate, eval_data=eval_data,
                          eval_collate=eval_collate, run_config={"finetune": run_config(config)},
                          callbacks=self._callbacks(stage), param_groups=self._param_groups(train),
                          evaluator=self._evaluator(with_dev, train.batch_size) if with_dev else None)
        result = trainer.train(resume=resume)
        seconds = time.perf_counter() - start
        if result.stopped == "interrupted":  # scores of a half-trained model must not pass for results
            raise RunInterrupted(f"fine-tuning was interrupted at step {result.step} by "
                                 f"{result.stop_signal or 'a signal'} (checkpoint: {result.last_checkpoint}); "
                                 "nothing was exported. "
                                 "Run the same command with --resume to finish it", result.stop_signal)
        for regularizer in self.regularizers:
            regularizer.finish(self.model, stage)
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


__all__ = ["FinetuneConfig", "FinetuneTrainConfig", "Finetuning", "MultiTaskBatches", "TaskConfig", "TaskData",
           "finetune_config", "load_config"]
