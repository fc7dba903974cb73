"""A pretraining run from one YAML file: corpus, tokenizer, model, input format, masking, objectives, training.

Recipes (`bert`, `roberta`, `chinese-wwm`, `spanbert`, `electra`) are YAML files in `bertology/recipes/`;
`key.sub=value` overrides change any field from the command line.
"""

from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from ..data.coarse import AmbertCollator, CoarseVocabulary
from ..data.collate import PretrainingCollator
from ..data.formats import FormatConfig, PretrainingDataset, Specials, split_documents
from ..data.maskers import MaskingConfig, build_masker
from ..data.shards import TokenCorpus
from ..errors import ConfigError
from ..models.albert import AlbertConfig, AlbertModel
from ..models.ambert import AmbertConfig, AmbertModel
from ..models.bert import BertModel
from ..models.chinesebert import ChineseBertConfig, ChineseBertModel
from ..models.config import BertConfig
from ..models.pretrained import load, read_config
from ..models.roberta import RobertaConfig, RobertaModel
from ..tokenization import BaseTokenizer, load_tokenizer
from ..training import TrainConfig, Trainer, TrainResult
from ..training.data import ResumableLoader
from ..utils.io import atomic_write
from ..utils.table import format_table
from ..utils.typed import apply_overrides, from_mapping, load_yaml
from ..objectives.ambert import AmbertPretrainingModel
from ..objectives.model import PretrainingModel


@dataclass
class PretrainConfig:
    corpus: str | None = None
    tokenizer: str | None = None
    run_dir: str = "runs/pretrain"
    seed: int = 42
    #: {"preset": "mini", ...BertConfig fields} or {"from_pretrained": folder}
    model: dict = field(default_factory=lambda: {"preset": "mini"})
    data: dict = field(default_factory=dict)
    masking: dict = field(default_factory=dict)
    #: objective name -> loss weight
    objectives: dict = field(default_factory=lambda: {"mlm": 1.0})
    objective_options: dict = field(default_factory=dict)
    train: dict = field(default_factory=dict)


def recipe_names() -> list[str]:
    folder = resources.files("bertology") / "recipes"
    return sorted(p.name[: -len(".yaml")] for p in folder.iterdir() if p.name.endswith(".yaml"))


def _read_yaml(source: str) -> tuple[dict[str, Any], str]:
    path = Path(source)
    if not path.is_file():
        if source in recipe_names():
            text = (resources.files("bertology") / "recipes" / f"{source}.yaml").read_text(encoding="utf-8")
            return load_yaml(text) or {}, f"recipe '{source}'"
        raise ConfigError(f"{source}: no such config file, and not a recipe ({', '.join(recipe_names())})")
    try:
        data = load_yaml(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({exc})") from None
    return data, str(path)


def load_config(source: str, overrides: list[str] | None = None) -> PretrainConfig:
    data, where = _read_yaml(source)
    data = apply_overrides(data, overrides or [])
    config = from_mapping(PretrainConfig, data, f"{where}: ")
    for name in ("corpus", "tokenizer"):
        if not getattr(config, name):
            raise ConfigError(f"{where}: field '{name}' is required (set it in the file or with --set {name}=PATH)")
    return config


FAMILIES: dict[str, tuple[type[BertConfig], type[BertModel]]] = {
    "bert": (BertConfig, BertModel),
    "albert": (AlbertConfig, AlbertModel),
    "roberta": (RobertaConfig, RobertaModel),
    "chinesebert": (ChineseBertConfig, ChineseBertModel),
    "ambert": (AmbertConfig, AmbertModel),
}


def _bert_config(spec: dict[str, Any], tokenizer: BaseTokenizer, max_length: int) -> tuple[BertConfig, str | None]:
    spec = dict(spec)
    family = spec.pop("family", "bert")
    if family not in FAMILIES:
        raise ConfigError(f"model field 'family' is {family!r}; choose one of {sorted(FAMILIES)}")
    config_class = FAMILIES[family][0]
    if "from_pretrained" in spec:
        folder = spec.pop("from_pretrained")
        config = read_config(folder)
        if config.vocab_size != tokenizer.vocab_size:
            raise ConfigError(f"model {folder} has vocab_size {config.vocab_size}, the tokenizer has "
                              f"{tokenizer.vocab_size}")
        return config, folder
    preset = spec.pop("preset", "mini")
    spec.setdefault("vocab_size", tokenizer.vocab_size)
    spec.setdefault("pad_token_id", tokenizer.pad_token_id)
    # RoBERTa's positions start after the padding index, so its table needs pad + 1 more rows
    extra = tokenizer.pad_token_id + 1 if family == "roberta" else 0
    spec.setdefault("max_position_embeddings", max(512, max_length) + extra)
    if family == "roberta":
        spec.setdefault("type_vocab_size", 1)
    if family == "ambert":
        spec.setdefault("coarse_vocab_size", 20000)  # the cap; the vocabulary built from the corpus sets it
    return config_class.preset(preset, **spec), None


@dataclass
class Pretraining:
    """Everything a run is built from, so tests and the report can reach the parts."""

    config: PretrainConfig
    tokenizer: BaseTokenizer
    corpus: TokenCorpus
    model: PretrainingModel
    train_set: PretrainingDataset
    eval_set: PretrainingDataset | None
    collator: PretrainingCollator
    train_config: TrainConfig

    @classmethod
    def build(cls, config: PretrainConfig) -> Pretraining:
        tokenizer = load_tokenizer(config.tokenizer)
        corpus = TokenCorpus(config.corpus)
        if corpus.vocab_size != tokenizer.vocab_size:
            raise ConfigError(f"corpus {config.corpus} was tokenized with a vocabulary of {corpus.vocab_size} "
                              f"tokens, the tokenizer {config.tokenizer} has {tokenizer.vocab_size}")
        data = FormatConfig(**config.data) if config.data else FormatConfig()
        bert_config, pretrained = _bert_config(config.model, tokenizer, data.max_length)
        train_docs, eval_docs = split_documents(corpus.num_documents, data.eval_fraction, config.seed)
        coarse_vocab = None
        if isinstance(bert_config, AmbertConfig):
            coarse_vocab = CoarseVocabulary.build(corpus, train_docs, bert_config.coarse_vocab_size)
            bert_config.coarse_vocab_size = len(coarse_vocab)
            if list(config.objectives) != ["mlm"]:
                raise ConfigError("AMBERT pretrains with objectives {mlm: 1.0} (on both granularities)")
            model = AmbertPretrainingModel(bert_config)
        else:
            encoder_class = next(m for c, m in FAMILIES.values() if type(bert_config) is c)
            full = load(pretrained) if pretrained else None  # with its MLM / sentence heads, if the folder has them
            encoder = (full.bert if hasattr(full, "bert") else full) if full is not None else None
            names = list(config.objectives)
            if encoder is None:
                needs_pooler = any(n in ("nsp", "sop", "order", "distance") for n in names)
                encoder = encoder_class.for_tokenizer(bert_config, tokenizer, add_pooling_layer=needs_pooler)
            if "pinyin_ids" in encoder.token_inputs and not corpus.has_pinyin:
                raise ConfigError(f"{type(encoder).__name__} reads pinyin: prepare {config.corpus} "
                                  "with --record-pinyin")
            model = PretrainingModel(bert_config, names, config.objective_options, encoder=encoder)
            if full is not None:
                model.adopt_heads(full)
        data = dataclasses.replace(data, pair_task=model.pair_task)
        if model.pair_task and getattr(model, "bert", None) is not None:
            segment = getattr(model.bert.embeddings, "segment", None)
            if segment is not None and segment.num_embeddings < 2:
                raise ConfigError(f"the '{model.pair_task}' objective puts two segments in each input, but this "
                                  f"model has type_vocab_size={segment.num_embeddings}")
        if model.needs_case and corpus.case(0) is None:
            raise ConfigError(f"the capitalization objective needs case labels: prepare {config.corpus} "
                              "with --record-case")
        specials = Specials(tokenizer.cls_token_id, tokenizer.sep_token_id, tokenizer.pad_token_id)
        train_set = PretrainingDataset(corpus, data, specials, train_docs, config.seed)
        eval_set = PretrainingDataset(corpus, data, specials, eval_docs, config.seed + 1) if len(eval_docs) else None
        masker = None
        if model.needs_masking:
            masking = MaskingConfig.from_dict(config.masking, "masking: ")
            masker = build_masker(masking, tokenizer)
        collator = PretrainingCollator(masker, tokenizer.pad_token_id, config.seed)
        if coarse_vocab is not None:
            collator = AmbertCollator(collator, coarse_vocab, tokenizer.mask_token_id)
            coarse_vocab.save(Path(config.run_dir) / "coarse_vocab.json")
        train = {"seed": config.seed, **config.train}
        train.setdefault("loss_weights", {k: float(v) for k, v in config.objectives.items()})
        return cls(config, tokenizer, corpus, model, train_set, eval_set, collator,
                   TrainConfig.from_dict(train, "train: "))

    def run(self, resume: bool = False) -> TrainResult:
        start = time.perf_counter()
        trainer = Trainer(self.model, self.train_set, self.train_config, self.config.run_dir,
                          collate=self.collator, eval_data=self.eval_set,
                          run_config=dataclasses.asdict(self.config))
        result = trainer.train(resume=resume)
        if trainer.world.is_main and self.eval_set is not None:
            self.write_report(trainer, result, time.perf_counter() - start)
        return result

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
