"""A pretraining run from one YAML file: corpus, tokenizer, model, input format, masking, objectives, training.

Recipes (`bert`, `roberta`, `chinese-wwm`, `spanbert`, `electra`, ...) are YAML files in `bertology/recipes/`;
`key.sub=value` overrides change any field from the command line. The file is read by the one run-config
loader (runs/config.py) and every section is checked at load; families, objectives and masking strategies
are looked up in their registries, so this module names none of them.
"""

from __future__ import annotations

import dataclasses
import json
import time
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from torch import nn

from ..data.collate import PretrainingCollator
from ..data.formats import FormatConfig, PretrainingDataset, Specials, split_documents
from ..data.maskers import MaskingConfig, build_masker
from ..data.shards import TokenCorpus
from ..data.transforms import TransformContext
from ..errors import ConfigError, RunInterrupted
from ..models.config import BertConfig, preset_names
from ..models.family import FAMILIES, Family, FamilyPretraining, VocabInfo, family_for_config
from ..models.pretrained import load, read_config
from ..objectives import OBJECTIVES, PretrainingModel, objective_classes, objective_options
from ..objectives.base import RunFacts
from ..tokenization import BaseTokenizer, load_tokenizer, save_for_model
from ..training import TrainConfig, Trainer, TrainResult
from ..training.data import ResumableLoader
from ..training.seeding import seed_everything
from ..utils.io import atomic_write
from ..utils.table import format_table
from ..utils.typed import (
    Where,
    apply_overrides,
    as_where,
    check_type,
    parse,
    suggest,
    to_plain,
    unknown_fields,
)
from .config import load_run_config, rebase_paths, recipe_names

__all__ = ["ModelSpec", "PretrainConfig", "Pretraining", "apply_overrides", "load_config", "recipe_names"]


@dataclass
class ModelSpec:
    """The `model:` section: a family, a size preset (or a pretrained folder), and any field of the family's
    config class (hidden_size, ALBERT's embedding_size, ...), checked against that class at load."""

    family: str = "bert"
    preset: str = "mini"
    #: continue from this folder (its config.json then decides the architecture; preset and fields are unused)
    from_pretrained: str | None = field(default=None, metadata={"path": True})
    #: fields of the family's config class; vocabulary, padding and position sizes default to the tokenizer's
    fields: dict[str, Any] = field(default_factory=dict)

    #: the section's own keys, besides the config fields
    KEYS: ClassVar[tuple[str, ...]] = ("family", "preset", "from_pretrained")

    @classmethod
    def from_dict(cls, data: Any, where: str | Where = "") -> ModelSpec:
        """Parse the section; the keys besides KEYS depend on the family, so they are kept and checked by
        `validate` against the family's config class."""
        return parse(cls, data, where, unknown="keep", extra_field="fields")

    def validate(self, where: str | Where = "") -> None:
        """Family and preset known, every field one of the family's config fields and of its type."""
        where = as_where(where)
        family = FAMILIES.entry(self.family, where.child("family")).obj
        known = family.config_fields()
        strays = [k for k in self.fields if k not in known]
        if strays:
            raise self._unknown(where, strays, known)
        hints = typing.get_type_hints(family.config_class)
        for name, value in self.fields.items():
            check_type(name, value, hints[name], where)
        presets = preset_names()
        if self.preset not in presets and self.preset.lower() not in presets:
            raise ConfigError(f"{where}field 'preset' is {self.preset!r}{suggest(self.preset, presets)} "
                              f"(known presets: {', '.join(presets)})")

    def _unknown(self, where: Where, strays: list[str], known: list[str]) -> ConfigError:
        """Keys no family knows come first (a misspelt `family` must not blame the fields of the family meant);
        a field of another family says which."""
        others = {name: f.name for f in FAMILIES.values() for name in f.config_fields() if f.name != self.family}
        typos = [k for k in strays if k not in others]
        if typos:
            return unknown_fields(where, typos, [*self.KEYS, *known])
        owners = ", ".join(f"'{k}' (family {others[k]})" for k in strays)
        return ConfigError(f"{where}unknown field{'s' if len(strays) > 1 else ''} for family {self.family!r}: "
                           f"{owners}; set 'family' to use them")

    @property
    def family_entry(self) -> Family:
        return FAMILIES[self.family]

    def config(self, tokenizer: VocabInfo, max_length: int, where: str | Where = "") -> BertConfig:
        """The preset with the fields, and the family's defaults (from the tokenizer) for what they leave out."""
        family = self.family_entry
        values = {**family.defaults(self.fields, tokenizer, max_length), **self.fields}
        try:
            return family.config_class.preset(self.preset, **values)
        except ConfigError as exc:
            raise ConfigError(f"{as_where(where)}{exc}") from None

    def to_dict(self) -> dict[str, Any]:
        """The section as written: its keys and the config fields side by side."""
        given = {"from_pretrained": self.from_pretrained} if self.from_pretrained else {}
        return {"family": self.family, "preset": self.preset, **given, **self.fields}


@dataclass(frozen=True)
class _VocabStandIn:
    """Tokenizer numbers for checking a model section at load, before the tokenizer is read: large enough
    that only the section's own values can be out of range."""

    vocab_size: int = 1 << 20
    pad_token_id: int = 0


@dataclass
class PretrainConfig:
    """A pretraining run. Every section is parsed and checked when the file is loaded, including those the
    run will not use (masking in an SOP-only run, options of objectives not chosen)."""

    #: paths in a config file are relative to the file's folder (in a recipe, to the working directory)
    corpus: str | None = field(default=None, metadata={"path": True})
    tokenizer: str | None = field(default=None, metadata={"path": True})
    run_dir: str = field(default="runs/pretrain", metadata={"path": True})
    seed: int = 42
    #: a ModelSpec once loaded (given as its mapping: its keys depend on the family)
    model: ModelSpec | dict = field(default_factory=lambda: {"preset": "mini"})
    data: FormatConfig = field(default_factory=FormatConfig)
    masking: MaskingConfig = field(default_factory=MaskingConfig)
    #: objective name -> loss weight
    objectives: dict = field(default_factory=lambda: {"mlm": 1.0})
    #: objective name -> its options, parsed at load into the dataclass the objective registered
    objective_options: dict = field(default_factory=dict)
    #: a TrainConfig once loaded; its seed defaults to the run's, its loss weights to the objectives'
    train: TrainConfig | dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.validate()

    def validate(self, where: str | Where = "") -> None:
        """Check every section, and turn the model, objective options and train sections into their
        dataclasses (their keys depend on the family, the objectives and the run's seed)."""
        where = as_where(where)
        for name in ("corpus", "tokenizer"):
            if not getattr(self, name):
                raise ConfigError(f"{where}field '{name}' is required (set it in the file or with --set {name}=PATH)")
        if not isinstance(self.model, ModelSpec):
            self.model = ModelSpec.from_dict(self.model, where.child("model"))
        self.model.config(_VocabStandIn(), self.data.max_length, where.child("model"))
        self._check_objectives(where)
        self.objective_options = objective_options(list(self.objective_options), self.objective_options,
                                                   where.child("objective_options"))
        if not isinstance(self.train, TrainConfig):
            defaults = {"seed": self.seed, "loss_weights": {k: float(v) for k, v in self.objectives.items()}}
            self.train = parse(TrainConfig, {**defaults, **self.train}, where.child("train"))

    def _check_objectives(self, where: Where) -> None:
        where = where.child("objectives")
        names = list(self.objectives)
        objective_classes(names, where)
        for name, weight in self.objectives.items():
            check_type(name, weight, float, where)
            if weight < 0:
                raise ConfigError(f"{where}field '{name}' must be a loss weight >= 0, got {weight}")
        pretraining = self.model.family_entry.pretraining
        if pretraining is not None:
            pretraining.check(names, where)

    def to_dict(self) -> dict[str, Any]:
        """Plain data that loads back as this config (the run folder's config.yaml)."""
        data = to_plain(self)
        data["model"] = self.model.to_dict()
        return data


def run_config(config: PretrainConfig) -> dict[str, Any]:
    """The config as the run folder's config.yaml holds it (paths absolute, so it loads back from anywhere);
    `--resume` compares it with the stored one."""
    return rebase_paths(PretrainConfig, config.to_dict(), Path.cwd())


def load_config(source: str, overrides: list[str] | None = None) -> PretrainConfig:
    """A pretraining config from a YAML file or a recipe name, with `key.path=value` overrides."""
    return load_run_config(PretrainConfig, source, overrides, recipes=True)


def _model_config(spec: ModelSpec, tokenizer: BaseTokenizer, max_length: int) -> BertConfig:
    """The folder's config with from_pretrained (it must share the tokenizer's vocabulary), else the spec's."""
    if spec.from_pretrained is None:
        return spec.config(tokenizer, max_length, "model")
    config = read_config(spec.from_pretrained)
    if config.vocab_size != tokenizer.vocab_size:
        raise ConfigError(f"model {spec.from_pretrained} has vocab_size {config.vocab_size}, the tokenizer has "
                          f"{tokenizer.vocab_size}")
    return config


def _shared_model(config: PretrainConfig, bert_config: BertConfig, family: Family, tokenizer: BaseTokenizer,
                  corpus: TokenCorpus) -> PretrainingModel:
    """The family's encoder (fresh, or continued from a folder with the heads it has) under the objectives."""
    pretrained = config.model.from_pretrained
    full = load(pretrained) if pretrained else None  # with its MLM / sentence heads, if the folder has them
    encoder = (full.bert if hasattr(full, "bert") else full) if full is not None else None
    names = list(config.objectives)
    if encoder is None:
        needs_pooler = any(OBJECTIVES[n].needs_pooler for n in names)
        encoder = family.encoder_class.for_tokenizer(bert_config, tokenizer, add_pooling_layer=needs_pooler)
    if "pinyin_ids" in encoder.token_inputs and not corpus.has_pinyin:
        raise ConfigError(f"{type(encoder).__name__} reads pinyin: prepare {config.corpus} with --record-pinyin")
    model = PretrainingModel(bert_config, names, config.objective_options, encoder=encoder)
    if full is not None:
        model.adopt_heads(full)
    return model


def _check_inputs(config: PretrainConfig, model: nn.Module, corpus: TokenCorpus) -> None:
    """What the objectives read must be in the model and the corpus: two segment types, case labels."""
    bert = getattr(model, "bert", None)
    if model.pair_task and bert is not None:
        segment = getattr(bert.embeddings, "segment", None)
        if segment is not None and segment.num_embeddings < 2:
            raise ConfigError(f"the '{model.pair_task}' objective puts two segments in each input, but this "
                              f"model has type_vocab_size={segment.num_embeddings}")
    if model.needs_case and corpus.case(0) is None:
        raise ConfigError(f"the capitalization objective needs case labels: prepare {config.corpus} "
                          "with --record-case")


@dataclass
class Pretraining:
    """Everything a run is built from, so tests and the report can reach the parts."""

    config: PretrainConfig
    tokenizer: BaseTokenizer
    corpus: TokenCorpus
    model: nn.Module
    train_set: PretrainingDataset
    eval_set: PretrainingDataset | None
    collator: Any
    train_config: TrainConfig

    @classmethod
    def build(cls, config: PretrainConfig) -> Pretraining:
        seed_everything(config.seed)  # before anything random is built: same config and seed, same run
        tokenizer = load_tokenizer(config.tokenizer)
        corpus = TokenCorpus(config.corpus)
        if corpus.vocab_size != tokenizer.vocab_size:
            raise ConfigError(f"corpus {config.corpus} was tokenized with a vocabulary of {corpus.vocab_size} "
                              f"tokens, the tokenizer {config.tokenizer} has {tokenizer.vocab_size}")
        bert_config = _model_config(config.model, tokenizer, config.data.max_length)
        train_docs, eval_docs = split_documents(corpus.num_documents, config.data.eval_fraction, config.seed)
        family = family_for_config(bert_config)
        if family is None:
            raise ConfigError(f"no model family is registered for {type(bert_config).__name__}")
        own: FamilyPretraining | None = family.pretraining() if family.pretraining is not None else None
        if own is not None:
            model = own.build_model(bert_config, list(config.objectives), corpus, train_docs)
        else:
            model = _shared_model(config, bert_config, family, tokenizer, corpus)
        _check_inputs(config, model, corpus)
        if hasattr(model, "check_run"):
            model.check_run(RunFacts(config.data.format, config.data.max_length, corpus, model.bert))
        data = dataclasses.replace(config.data, pair_task=model.pair_task)
        specials = Specials(tokenizer.cls_token_id, tokenizer.sep_token_id, tokenizer.pad_token_id)
        train_set = PretrainingDataset(corpus, data, specials, train_docs, config.seed)
        eval_set = PretrainingDataset(corpus, data, specials, eval_docs, config.seed + 1) if len(eval_docs) else None
        masker = build_masker(config.masking, tokenizer) if model.needs_masking else None
        transforms = (model.instance_transforms(TransformContext.from_tokenizer(tokenizer))
                      if hasattr(model, "instance_transforms") else [])
        collator: Any = PretrainingCollator(masker, tokenizer.pad_token_id, config.seed, transforms=transforms)
        if own is not None:
            collator = own.collator(collator, tokenizer, config.run_dir)
        return cls(config, tokenizer, corpus, model, train_set, eval_set, collator, config.train)

    def run(self, resume: bool = False) -> TrainResult:
        start = time.perf_counter()
        trainer = Trainer(self.model, self.train_set, self.train_config, self.config.run_dir,
                          collate=self.collator, eval_data=self.eval_set,
                          run_config=run_config(self.config))
        result = trainer.train(resume=resume)
        if result.stopped == "interrupted":  # not finished: no model/, no report; the checkpoint resumes it
            raise RunInterrupted(f"pretraining was interrupted at step {result.step} by "
                                 f"{result.stop_signal or 'a signal'} (checkpoint: {result.last_checkpoint}); "
                                 "nothing was exported. "
                                 "Run the same command with --resume to finish it", result.stop_signal)
        if trainer.world.is_main:
            self.export_tokenizer(trainer.model_dir)
        if trainer.world.is_main and self.eval_set is not None:
            self.write_report(trainer, result, time.perf_counter() - start)
        return result

    def export_tokenizer(self, model_dir: Path) -> BaseTokenizer | None:
        """Save beside the exported model the tokenizer that model reads (the run's, or the family's own made
        from it with the run folder's extra files, e.g. AMBERT's coarse vocabulary), so that the model folder
        alone is enough to fine-tune and predict. None when no model was exported."""
        if not (model_dir / "config.json").is_file():
            return None
        return save_for_model(self.tokenizer, model_dir, extras=self.config.run_dir)

    def unigram_baseline(self, limit_batches: int = 50) -> float | None:
        """Accuracy of always guessing the corpus's most frequent token at the held-out masked positions."""
        if self.eval_set is None or self.collator.masker is None:
            return None
        counts = np.zeros(self.corpus.vocab_size, dtype=np.int64)
        for s in range(0, self.corpus.num_sentences, max(1, self.corpus.num_sentences // 20000)):
            counts += np.bincount(self.corpus.sentence(s), minlength=self.corpus.vocab_size)
        best = int(counts.argmax())
        loader = ResumableLoader(self.eval_set, self.train_config.batch_size, self.config.seed, self.collator,
                                 shuffle=False, drop_last=False)
        hits = total = 0
        for b, batch in enumerate(loader.epoch(0)):
            if b >= limit_batches:
                break
            labels = batch["labels"][batch["labels"] != -100]
            hits += int((labels == best).sum())
            total += int(labels.numel())
        return hits / total if total else None

    def write_report(self, trainer: Trainer, result: TrainResult, seconds: float) -> Path:
        results = trainer.evaluate()
        baseline = self.unigram_baseline()
        rows = [[k, f"{v:.4f}"] for k, v in sorted(results.items())]
        if baseline is not None:
            rows.append(["unigram baseline mlm_acc (most frequent token)", f"{baseline:.4f}"])
        if "eval/mlm_acc_hidden" in results:
            rows.append(["(mlm_acc includes the labelled tokens left unchanged, which copying predicts; "
                         "mlm_acc_hidden only those the input hides)", ""])
        lines = [
            f"# Pretraining report: {self.config.run_dir}", "",
            f"- objectives: {', '.join(f'{k} (x{v})' for k, v in self.config.objectives.items())}",
            f"- model: {self.model.config.num_hidden_layers} layers, hidden {self.model.config.hidden_size}, "
            f"{sum(p.numel() for p in self.model.parameters()):,} parameters",
            f"- data: {self.corpus.num_documents:,} documents, {self.corpus.num_tokens:,} tokens; "
            f"{len(self.train_set):,} training and {len(self.eval_set):,} held-out instances "
            f"({self.train_set.config.format}, max length {self.train_set.config.max_length})",
            f"- steps: {result.step} ({result.stopped}), {seconds / 60:.1f} minutes", "",
            "## Held-out evaluation", "", format_table(["metric", "value"], rows, markdown=True), "",
        ]
        path = Path(self.config.run_dir) / "report.md"
        with atomic_write(path) as handle:
            handle.write("\n".join(lines))
        with atomic_write(Path(self.config.run_dir) / "eval.json") as handle:
            json.dump({**results, "unigram_baseline_mlm_acc": baseline}, handle, indent=2)
        return path
