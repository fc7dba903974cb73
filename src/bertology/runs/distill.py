"""A distillation run from one YAML file: TinyBERT's general or task distillation, or DistilBERT.

- `stage: general`: a pretrained (not fine-tuned) teacher encoder and a corpus prepared by `bertology corpus
  prepare`; the student learns the teacher's embeddings, attention scores and hidden states.
- `stage: task`: a fine-tuned teacher (a `finetune` run's model/) and the task's files; intermediate layers
  first, then the prediction layer (the task logits), each phase a Trainer run of its own; optionally on
  TinyBERT-augmented training data written once into the run folder and reused.
- `method: distilbert`: a masked-LM teacher, a corpus, and soft targets + masked LM + cosine at once.

Students start at random (`student.init: random` with `student.size`), from teacher layers (DistilBERT's every
other layer) or from a general-distilled student (`init: pretrained`, `student.model`). Everything is checked
before any training starts: vocabularies, layer maps, labels.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch
import yaml

from ..assets import model_path
from ..compression.distillation.augment import AugmentOptions, augment_file
from ..compression.distillation.losses import build_losses, for_stage
from ..compression.distillation.mapping import layer_map
from ..compression.distillation.module import Distillation
from ..compression.distillation.student import (
    freeze,
    from_teacher_layers,
    pretrained_student,
    random_student,
)
from ..compression.report import CompressionReport, count_parameters, measure_variant
from ..compression.vocabulary import id_map, kept_tokens, prune_encoder, prune_tokenizer, token_counts
from ..errors import ConfigError, RunInterrupted
from ..training import TrainConfig, Trainer
from ..training.seeding import seed_everything
from ..utils.io import atomic_write
from ..utils.typed import Where, as_where, check_fields, parse, to_plain
from .config import load_run_config, rebase_paths

logger = logging.getLogger("bertology")

#: the packaged recipes of `bertology distill` (src/bertology/recipes/distill/NAME.yaml)
RECIPE_FOLDER = "recipes/distill"

#: TinyBERT's losses per stage, and DistilBERT's (weights from its paper: 5 soft targets, 2 MLM, 1 cosine)
DEFAULT_LOSSES = {
    ("tinybert", "general"): {"embedding": {}, "attention": {"heads": "mean"}, "hidden": {}},
    ("tinybert", "task"): {"embedding": {}, "attention": {"heads": "mean"}, "hidden": {}, "prediction": {}},
    ("distilbert", "general"): {"distilbert_soft": {"weight": 5.0}, "cosine": {"weight": 1.0}},
}


@dataclass
class StudentConfig:
    #: random (with `size`), teacher_layers (`layers`, default every other one) or pretrained (`model`)
    init: Literal["random", "teacher_layers", "pretrained"] = "random"
    #: config fields of a random student: num_hidden_layers, hidden_size, num_attention_heads, intermediate_size
    size: dict[str, Any] = field(default_factory=dict)
    #: 0-based teacher layers a teacher_layers student keeps
    layers: list[int] | None = None
    #: a general-distilled student's model folder (init: pretrained)
    model: str | None = field(default=None, metadata={"path": True})
    #: full: the teacher's vocabulary; data: only the tokens the distillation data uses, plus the special and
    #: ASCII character tokens (compression/vocabulary.py): the embeddings shrink, the data reads the same
    vocabulary: Literal["full", "data"] = "full"
    #: vocabulary data: at most this many tokens, the most frequent (the data's rarer ones read as [UNK])
    vocabulary_size: int | None = None


@dataclass
class TaskSection:
    """The task of task distillation (its files; the fine-tuned teacher's head decides kind and labels)."""

    train: str | None = field(default=None, metadata={"path": True})
    dev: str | None = field(default=None, metadata={"path": True})
    test: str | None = field(default=None, metadata={"path": True})
    max_length: int = 128


@dataclass
class AugmentSection(AugmentOptions):
    """TinyBERT's data augmentation of the task's training file; `model` is the masked LM proposing words."""

    enabled: bool = False
    model: str | None = field(default=None, metadata={"path": True})


@dataclass
class DistillConfig:
    method: Literal["tinybert", "distilbert"] = "tinybert"
    stage: Literal["general", "task"] = "task"
    teacher: str = ""
    student: StudentConfig = field(default_factory=StudentConfig)
    #: a prepared corpus folder (general stage, DistilBERT)
    corpus: str | None = field(default=None, metadata={"path": True})
    task: TaskSection = field(default_factory=TaskSection)
    #: n = g(m): uniform, top, bottom, or a list of teacher layers (1-based) per student layer (checked by
    #: `layer_map` against both models' depths)
    layer_map: Any = "uniform"
    #: loss name -> options (default: the method's and stage's losses)
    losses: dict[str, Any] | None = None
    augment: AugmentSection = field(default_factory=AugmentSection)
    #: the phases, in order: intermediate then prediction (TinyBERT task), one of them, or "all" at once
    phases: list[str] | None = None
    #: steps (or epochs) of each phase, overriding `train` for that phase: {prediction: {epochs: 3}}
    phase_train: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: DistilBERT's weight of the student's own masked-LM loss
    mlm_weight: float = 2.0
    #: task distillation: weight of the loss on the true labels beside the soft targets (0: soft targets only,
    #: as TinyBERT)
    label_weight: float = 0.0
    max_length: int = 128
    run_dir: str = field(default="runs/distill", metadata={"path": True})
    seed: int = 42
    train: TrainConfig = field(default_factory=TrainConfig)

    def validate(self, where: str | Where = "") -> None:
        where = as_where(where)
        check_fields(self, where)
        if not self.teacher:
            raise ConfigError(f"{where}field 'teacher' is required (a model folder)")
        if self.method == "distilbert" and self.stage != "general":
            raise ConfigError(f"{where}DistilBERT distils on a corpus: set stage: general")
        if self.stage == "general" and not self.corpus:
            raise ConfigError(f"{where}field 'corpus' is required for stage general (a folder made by "
                              "`bertology corpus prepare`)")
        if self.stage == "task" and not self.task.train:
            raise ConfigError(f"{where.child('task')}field 'train' is required for task distillation")
        if self.student.init == "pretrained" and not self.student.model:
            raise ConfigError(f"{where.child('student')}init 'pretrained' needs 'model' (a distilled student's folder)")
        if self.student.init == "random" and not self.student.size:
            raise ConfigError(f"{where.child('student')}init 'random' needs 'size' (num_hidden_layers, hidden_size, "
                              "num_attention_heads, intermediate_size)")
        for phase in self.phase_list():
            if phase not in ("intermediate", "prediction", "all"):
                raise ConfigError(f"{where.child('phases')}unknown phase {phase!r}; phases are intermediate, "
                                  "prediction and all")
        unknown = sorted(set(self.phase_train) - set(self.phase_list()))
        if unknown:
            raise ConfigError(f"{where.child('phase_train')}names phase(s) {unknown} the run does not have "
                              f"({self.phase_list()})")
        if self.student.vocabulary_size is not None and self.student.vocabulary != "data":
            raise ConfigError(f"{where.child('student')}'vocabulary_size' applies with vocabulary: data")
        if self.student.vocabulary == "data" and self.method == "distilbert":
            raise ConfigError(f"{where.child('student')}DistilBERT's soft targets span the teacher's whole "
                              "vocabulary: keep vocabulary: full")
        if self.label_weight < 0:
            raise ConfigError(f"{where}field 'label_weight' must be >= 0, got {self.label_weight}")
        if self.augment.enabled and self.stage != "task":
            raise ConfigError(f"{where.child('augment')}augmentation applies to task distillation")
        if self.augment.enabled and not self.augment.model:
            raise ConfigError(f"{where.child('augment')}field 'model' is required: a masked-LM model folder whose "
                              "predictions propose the replacement words")

    def phase_list(self) -> list[str]:
        if self.phases is not None:
            return list(self.phases)
        if self.method == "distilbert":
            return ["all"]
        return ["intermediate", "prediction"] if self.stage == "task" else ["intermediate"]

    def loss_spec(self) -> dict[str, Any]:
        return dict(self.losses) if self.losses is not None else DEFAULT_LOSSES[(self.method, self.stage)]

    def phase_config(self, phase: str, where: Where) -> TrainConfig:
        values = {**to_plain(self.train), **self.phase_train.get(phase, {})}
        return parse(TrainConfig, values, where.child("phase_train").child(phase))


def load_config(source: str | Path, overrides: list[str] | None = None) -> DistillConfig:
    """A distill config from a YAML file or a packaged recipe (`tinybert-general`, `tinybert-task`, `distilbert`)."""
    config = load_run_config(DistillConfig, source, overrides, recipes=RECIPE_FOLDER)
    if config.teacher and not Path(config.teacher).exists():
        config.teacher = str(model_path(config.teacher))  # a registry alias such as `minilm`
    config.validate()
    return config


def run_config(config: DistillConfig) -> dict[str, Any]:
    """The config as config.yaml holds it under `distill` (paths absolute), compared on --resume."""
    return {"distill": rebase_paths(DistillConfig, to_plain(config), Path.cwd())}


class Distilling:
    """Builds teacher, student, data and losses from a DistillConfig (checking them all), then trains each
    phase with the Trainer and writes the compression report."""

    def __init__(self, config: DistillConfig) -> None:
        config.validate()
        seed_everything(config.seed)
        self.config = config
        self.where = Where("distill")
        from ..tokenization import load_tokenizer

        self.teacher = self._load_teacher()
        teacher_folder = self._teacher_encoder_folder()
        self.tokenizer = load_tokenizer(teacher_folder)
        self.student_tokenizer = self.tokenizer
        self.input_map: torch.Tensor | None = None  # teacher ids -> a pruned student's ids
        self.student = self._build_student()
        self.layer_map = layer_map(config.layer_map, self.student_encoder.config.num_hidden_layers,
                                   self.teacher_encoder.config.num_hidden_layers, self.where.child("layer_map"))
        spec = config.loss_spec()
        self.losses = build_losses(spec, self.student_encoder.config, self.teacher_encoder.config, self.layer_map,
                                   self.where.child("losses"))
        for phase in config.phase_list():
            if phase != "all" and not for_stage(self.losses, phase):
                raise ConfigError(f"{self.where.child('phases')}phase {phase!r} has no loss among {list(spec)}")
        self.train_configs = {p: config.phase_config(p, self.where) for p in config.phase_list()}
        self._build_data()
        if config.student.vocabulary == "data":
            self._prune_student_vocabulary()

    # ------------------------------------------------------------------------------------ models
    def _load_teacher(self) -> torch.nn.Module:
        from ..models import load

        folder = Path(self.config.teacher)
        if self.config.stage == "task":
            from ..finetuning.model import TaskModel

            if not (folder / "task.json").is_file():
                raise ConfigError(f"{self.where.child('teacher')}{folder} is not a fine-tuned model folder (no "
                                  "task.json): task distillation learns from a fine-tuned teacher")
            return freeze(TaskModel.from_pretrained(folder))
        model = load(folder)
        if self.config.method == "distilbert":
            if not hasattr(model, "mlm_head"):
                mlm = _as_masked_lm(folder)
                if mlm is None:
                    raise ConfigError(f"{self.where.child('teacher')}{folder} holds no masked-LM head: DistilBERT's "
                                      "soft targets need the teacher's MLM predictions")
                model = mlm
            return freeze(model)
        return freeze(getattr(model, "bert", model))

    def _teacher_encoder_folder(self) -> Path:
        folder = Path(self.config.teacher)
        if self.config.stage == "task":
            base = Path(self.teacher.base_path)
            for candidate in (folder / "tokenizer", folder / "encoder", base):
                if (candidate / "vocab.txt").is_file() or (candidate / "tokenizer.json").is_file():
                    return candidate
        return folder

    @property
    def teacher_encoder(self) -> torch.nn.Module:
        return _encoder_of(self.teacher)

    @property
    def student_encoder(self) -> torch.nn.Module:
        return _encoder_of(self.student)

    def _build_student(self, encoder: torch.nn.Module | None = None) -> torch.nn.Module:
        cfg, where = self.config.student, self.where.child("student")
        teacher = self.teacher_encoder
        if encoder is not None:
            pass
        elif cfg.init == "teacher_layers":
            encoder = from_teacher_layers(teacher, cfg.layers, where)
        elif cfg.init == "pretrained":
            encoder = pretrained_student(cfg.model, teacher, where)
            if encoder.config.vocab_size != teacher.config.vocab_size:
                self._adopt_pruned_vocabulary(Path(cfg.model), encoder)
        else:
            encoder = random_student(teacher, cfg.size, self.tokenizer if hasattr(teacher, "glyph") else None, where)
        if self.config.stage == "task":
            from ..finetuning.model import TaskModel

            student = TaskModel(encoder, dict(self.teacher.head_configs))
            student.task_options = dict(self.teacher.task_options)
            return student
        if self.config.method == "distilbert":
            mlm = _masked_lm_for(encoder)
            return mlm
        return encoder

    def _adopt_pruned_vocabulary(self, folder: Path, encoder: torch.nn.Module) -> None:
        """A pretrained student with a pruned vocabulary (an earlier `vocabulary: data` run): its own
        tokenizer, and the map from the teacher's ids to its ids."""
        from ..finetuning.model import tokenizer_folder
        from ..tokenization import load_tokenizer

        where = self.where.child("student").child("model")
        source = tokenizer_folder(folder)
        try:
            tokenizer = load_tokenizer(source)
        except (OSError, ValueError) as exc:
            raise ConfigError(f"{where}the student in {folder} has a vocabulary of {encoder.config.vocab_size} "
                              f"tokens, the teacher {self.teacher_encoder.config.vocab_size}, and no tokenizer of "
                              f"its own to map them ({exc})") from None
        if tokenizer.vocab_size != encoder.config.vocab_size:
            raise ConfigError(f"{where}the tokenizer in {source} has {tokenizer.vocab_size} tokens, the "
                              f"student's embeddings {encoder.config.vocab_size}")
        self.input_map = id_map(self.tokenizer, tokenizer, str(where))
        self.student_tokenizer = tokenizer

    def _prune_student_vocabulary(self) -> None:
        """`student.vocabulary: data`: keep the tokens the distillation data uses (counted on the training
        examples or the corpus), then rebuild the student around the smaller embeddings."""
        cfg, where = self.config.student, self.where.child("student").child("vocabulary")
        if self.input_map is not None:
            raise ConfigError(f"{where}the student in {cfg.model} already has a pruned vocabulary")
        vocab = self.tokenizer.vocab_size
        if self.task is not None:
            counts = token_counts((f["input_ids"] for f in self.train_data), vocab)
        else:
            counts = self.corpus.token_counts(vocab)
        keep = kept_tokens(counts, self.tokenizer, cfg.vocabulary_size, where=str(where))
        encoder = prune_encoder(self.student_encoder, keep)
        self.student_tokenizer = prune_tokenizer(self.tokenizer, keep, str(where))
        self.input_map = id_map(self.tokenizer, self.student_tokenizer, str(where))
        unknown = int(counts.sum() - counts[keep].sum())
        logger.info("student vocabulary: %d of %d tokens kept (%d of the data's %d tokens read as [UNK])",
                    len(keep), vocab, unknown, int(counts.sum()))
        self.student = self._build_student(encoder)

    # -------------------------------------------------------------------------------------- data
    def _build_data(self) -> None:
        config = self.config
        if config.stage == "task":
            self._build_task_data()
        else:
            self._build_corpus_data()

    def _build_task_data(self) -> None:
        from ..finetuning.features import collator_for
        from ..finetuning.multitask import TaskCollate
        from ..finetuning.taskdata import TaskConfig, read_task

        config = self.config
        name = self.teacher.default_task
        head = self.teacher.head_configs[name]
        if head.kind not in ("classification",):
            raise ConfigError(f"{self.where.child('teacher')}task distillation supports classification heads; the "
                              f"teacher's head {name!r} is {head.kind!r}")
        train = config.task.train
        if config.augment.enabled:
            train = str(self._augmented(Path(train)))
        task_config = TaskConfig(kind=head.kind, train=train, dev=config.task.dev, test=config.task.test,
                                 max_length=config.task.max_length)
        # the teacher's label order decides the ids, so logits line up class for class; a label it lacks is an
        # error naming the row
        from ..finetuning.labels import LabelSet

        task = read_task(name, task_config, self.tokenizer, "raise", config.seed,
                         labels=LabelSet(list(head.labels), source="the fine-tuned teacher's head"))
        self.task = task
        inputs = getattr(self.student_encoder, "token_inputs", ())
        self.task_collate = collator_for(self.tokenizer, task.kind, inputs)
        self.collate = TaskCollate(self.task_collate, name)
        self.train_data = task.features["train"]

    def _augmented(self, source: Path) -> Path:
        config = self.config
        output = Path(config.run_dir) / "augmented" / f"{source.stem}.augmented.jsonl"
        options = AugmentOptions(**{f.name: getattr(config.augment, f.name)
                                    for f in dataclasses.fields(AugmentOptions)})
        result = augment_file(source, output, config.augment.model, None, options)
        logger.info("augmented training data: %s (%s)", output, "reused" if result.reused else "written")
        self.augment_result = result
        return output

    def _build_corpus_data(self) -> None:
        from ..data.collate import PretrainingCollator
        from ..data.formats import FormatConfig, PretrainingDataset, Specials, split_documents
        from ..data.maskers import MaskingConfig, build_masker
        from ..data.shards import TokenCorpus

        config, tok = self.config, self.tokenizer
        corpus = self.corpus = TokenCorpus(config.corpus)
        if corpus.vocab_size != tok.vocab_size:
            raise ConfigError(f"{self.where.child('corpus')}{config.corpus} was tokenized with a vocabulary of "
                              f"{corpus.vocab_size} tokens, the teacher's tokenizer has {tok.vocab_size}")
        train_docs, _ = split_documents(corpus.num_documents, 0.0, config.seed)
        data = FormatConfig(format="full_sentences", max_length=config.max_length, eval_fraction=0.0)
        specials = Specials(tok.cls_token_id, tok.sep_token_id, tok.pad_token_id)
        self.train_data = PretrainingDataset(corpus, data, specials, train_docs, config.seed)
        masker = build_masker(MaskingConfig(), tok) if config.method == "distilbert" else None
        self.collate = PretrainingCollator(masker, tok.pad_token_id, config.seed)
        self.task = None

    # ----------------------------------------------------------------------------------- running
    def run(self, resume: bool = False) -> dict[str, Any]:
        config = self.config
        run_dir = Path(config.run_dir)
        start = time.perf_counter()
        phases = config.phase_list()
        folders = [run_dir] if len(phases) == 1 else [run_dir / f"phase{i + 1}-{p}" for i, p in enumerate(phases)]
        if len(phases) > 1:  # the run folder itself holds the resolved config, as every training command's does
            run_dir.mkdir(parents=True, exist_ok=True)
            with atomic_write(run_dir / "config.yaml") as handle:
                yaml.safe_dump(run_config(config), handle, sort_keys=False, allow_unicode=True)
        steps = {}
        for phase, folder in zip(phases, folders, strict=True):
            module = Distillation(self.student, self.teacher, self.losses, phase, mlm_weight=(
                config.mlm_weight if config.method == "distilbert" else 0.0),
                label_weight=config.label_weight if config.stage == "task" else 0.0, input_map=self.input_map)
            trainer = Trainer(module, self.train_data, self.train_configs[phase], folder, collate=self.collate,
                              run_config=run_config(config))
            result = trainer.train(resume=resume)
            if len(phases) > 1:
                _merge_metrics(run_dir, phases, folders)
            if result.stopped == "interrupted":
                raise RunInterrupted(f"distillation was interrupted in phase {phase!r} at step {result.step} by "
                                     f"{result.stop_signal or 'a signal'}; run the same command with --resume",
                                     result.stop_signal)
            steps[phase] = result.step
        self.student.save_pretrained(run_dir / "model")
        self.student_tokenizer.save_pretrained(run_dir / "model" / ("tokenizer" if config.stage == "task" else ""))
        summary = {"phases": steps, "seconds": round(time.perf_counter() - start, 1),
                   "teacher_parameters": count_parameters(self.teacher_encoder),
                   "student_parameters": count_parameters(self.student_encoder)}
        self.write_report(run_dir, summary)
        return summary

    def _metric(self, model: torch.nn.Module, tokenizer: Any) -> tuple[str | None, float | None]:
        """The task metric on the test split (else dev), the text tokenized by `tokenizer`: a pruned
        student reads it with its own vocabulary, as its users will."""
        if self.task is None:
            return None, None
        from ..finetuning.features import collator_for, encode
        from ..finetuning.predict import evaluate_task

        split = "test" if "test" in self.task.features else ("dev" if "dev" in self.task.features else None)
        if split is None:
            return None, None
        task, collate = self.task, self.task_collate
        if tokenizer is not self.tokenizer:
            task = copy.copy(self.task)
            task.features = {split: encode(task.examples[split], tokenizer, task.kind, task.labels,
                                           max_length=self.config.task.max_length)}
            collate = collator_for(tokenizer, task.kind, getattr(_encoder_of(model), "token_inputs", ()))
        metrics = evaluate_task(model, task, split, collate, 64)
        name = "accuracy" if "accuracy" in metrics else next(iter(metrics))
        return f"{split} {name}", float(metrics[name])

    def write_report(self, run_dir: Path, summary: dict[str, Any]) -> None:
        """The compression report: teacher and student side by side (size, speed, metric and its share)."""
        report = CompressionReport(reference="teacher", title=f"Distillation report ({self.config.method}, "
                                                               f"{self.config.stage} stage)")
        seq = min(128, self.teacher_encoder.config.max_position_embeddings,
                  self.student_encoder.config.max_position_embeddings)
        for name, model, encoder, tokenizer in (
                ("teacher", self.teacher, self.teacher_encoder, self.tokenizer),
                ("student", self.student, self.student_encoder, self.student_tokenizer)):
            metric_name, metric = self._metric(model, tokenizer)
            encoder.eval()
            report.add(measure_variant(name, encoder, vocab_size=encoder.config.vocab_size, metric_name=metric_name, metric=metric,
                                       model_call=_encoder_call(encoder), seq=seq, repeats=3))
            summary[f"{name}_{metric_name or 'metric'}"] = metric
        report.write(run_dir)
        with atomic_write(run_dir / "distill_summary.json") as handle:
            json.dump(summary, handle, indent=2)
        print(report.render_terminal())


def _merge_metrics(run_dir: Path, phases: list[str], folders: list[Path]) -> None:
    """The run folder's metrics.jsonl for a run of several phases: every phase's records in order, each with
    its `phase`, its own `phase_step`, and `step` counted across phases (so steps stay unique)."""
    lines, offset = [], 0
    for phase, folder in zip(phases, folders, strict=True):
        path = folder / "metrics.jsonl"
        records = [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.is_file() else []
        for record in records:
            lines.append(json.dumps({**record, "phase": phase, "phase_step": record["step"],
                                     "step": offset + record["step"]}))
        offset += max((r["step"] for r in records), default=0)
    with atomic_write(run_dir / "metrics.jsonl") as handle:
        handle.write("".join(line + "\n" for line in lines))


def _encoder_of(model: torch.nn.Module) -> torch.nn.Module:
    for name in ("encoder", "bert"):
        inner = getattr(model, name, None)
        if inner is not None and hasattr(inner, "config"):
            return inner
    return model


def _encoder_call(encoder: torch.nn.Module):
    def call(ids: torch.Tensor):
        return encoder(ids, torch.ones_like(ids))
    return call


def _as_masked_lm(folder: Path) -> torch.nn.Module | None:
    """The folder's model with its masked-LM head, when its checkpoint holds one."""
    from ..models.family import family_for_config
    from ..models.pretrained import read_config

    config = read_config(folder)
    family = family_for_config(config)
    cls = family.masked_lm_class if family is not None else None
    if cls is None:
        return None
    try:
        return cls.from_pretrained(folder, strict=True)
    except Exception:  # the checkpoint has no head weights
        return None


def _masked_lm_for(encoder: torch.nn.Module) -> torch.nn.Module:
    from ..models.family import family_for_config

    family = family_for_config(encoder.config)
    if family is None or family.masked_lm_class is None:
        raise ConfigError(f"DistilBERT needs a masked-LM class for {type(encoder).__name__}")
    model = family.masked_lm_class(encoder.config)
    model.bert.load_state_dict(encoder.state_dict(), strict=False)
    return model


__all__ = ["DistillConfig", "Distilling", "load_config", "run_config"]
