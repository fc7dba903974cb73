"""Sentence-embedding tasks from WordNet 3.0 (real English, installed with Debian's wordnet-base).

* Reverse-dictionary retrieval: the query is a synset's lemmas joined ("dog, domestic dog, Canis familiaris"),
  the right answer its definition (the gloss before its first quoted example), the candidates every other
  definition of the same split.
* Supervised pairs for training (`{"text": lemmas, "positive": definition, "negative": ...}`), the hard
  negative being the definition of a co-hyponym (a synset sharing a hypernym) from the same split.
* A graded similarity set of noun-synset pairs: the score is WordNet's path similarity 1 / (1 + shortest
  hypernym path). It measures distance in a hierarchy made by lexicographers, NOT human similarity judgments.

Synsets are split once, seeded, by synset: no synset (so no query and no definition) is in two splits.
Definitions shared by several synsets are left out everywhere, so each query has exactly one right answer.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..assets import wordnet_data_files
from .wordnet import parse_wordnet_line

__all__ = ["Synset", "path_similarity", "read_synsets", "retrieval_records", "similarity_records",
           "split_synsets", "training_records", "write_wordnet_pairs"]

_HYPERNYM = ("@", "@i")


@dataclass
class Synset:
    """One synset: key "pos:offset" (ss_type s counts as a), lemmas, definition and hypernym keys."""

    key: str
    pos: str
    lemmas: list[str]
    definition: str
    hypernyms: list[str] = field(default_factory=list)

    @property
    def query(self) -> str:
        """The lemmas, in WordNet's order, without repeats (case kept)."""
        return ", ".join(dict.fromkeys(self.lemmas))


def _pos(ss_type: str) -> str:
    return "a" if ss_type == "s" else ss_type


def read_synsets(files: Sequence[str | Path] | None = None) -> list[Synset]:
    """Every synset of the WordNet data files, with its hypernym pointers (@ and instance @i)."""
    paths = [Path(p) for p in files] if files is not None else wordnet_data_files()
    out = []
    for path in paths:
        with open(path, encoding="utf-8") as handle:
            for lineno, line in enumerate(handle, 1):
                if line.startswith("  ") or not line.strip():
                    continue
                s = parse_wordnet_line(line, f"{path}:{lineno}: ")
                fields = line.partition(" | ")[0].split()
                n_words = int(fields[3], 16)
                at = 4 + 2 * n_words
                hypernyms = []
                for p in range(int(fields[at])):
                    symbol, offset, pos = fields[at + 1 + 4 * p: at + 4 + 4 * p]
                    if symbol in _HYPERNYM:
                        hypernyms.append(f"{_pos(pos)}:{offset}")
                out.append(Synset(f"{_pos(s['ss_type'])}:{s['offset']}", _pos(s["ss_type"]), s["lemmas"],
                                  " ".join(s["definition"].split()), hypernyms))
    return out


def usable(synsets: Sequence[Synset]) -> list[Synset]:
    """Synsets with a definition that no other synset shares (one right answer per query)."""
    counts = Counter(s.definition for s in synsets)
    return [s for s in synsets if s.definition and counts[s.definition] == 1]


def split_synsets(synsets: Sequence[Synset], seed: int = 0, dev: int = 500, test: int = 1000
                  ) -> dict[str, list[Synset]]:
    """A seeded random split by synset: `dev` and `test` synsets, the rest train (disjoint by construction)."""
    if dev + test > len(synsets):
        raise ValueError(f"dev {dev} + test {test} synsets asked, only {len(synsets)} usable")
    order = np.random.default_rng(seed).permutation(len(synsets))
    picked = [synsets[i] for i in order]
    return {"test": picked[:test], "dev": picked[test:test + dev], "train": picked[test + dev:]}


def retrieval_records(split: Sequence[Synset]) -> list[dict[str, Any]]:
    """{"text": lemmas, "positive": definition, "id": key} per synset: the candidates are the split's
    definitions."""
    return [{"text": s.query, "positive": s.definition, "id": s.key} for s in split]


def training_records(split: Sequence[Synset], seed: int = 0, hard_negatives: bool = True) -> list[dict[str, Any]]:
    """Supervised pairs lemmas -> definition; with `hard_negatives`, each pair that has a co-hyponym in the
    split gets its definition as "negative" (one drawn, seeded); pairs without one are left out then, so
    every row has the same columns."""
    records = retrieval_records(split)
    if not hard_negatives:
        return records
    inside = {s.key: s for s in split}
    children: dict[str, list[str]] = defaultdict(list)
    for s in split:
        for h in s.hypernyms:
            children[h].append(s.key)
    rng = np.random.default_rng([seed, 7])
    out = []
    for s, record in zip(split, records, strict=True):
        siblings = sorted({c for h in s.hypernyms for c in children[h] if c != s.key})
        if not siblings:
            continue
        other = inside[siblings[int(rng.integers(len(siblings)))]]
        out.append({**record, "negative": other.definition})
    return out


def _ancestors(key: str, parents: dict[str, list[str]]) -> dict[str, int]:
    """Each hypernym ancestor of `key` (itself included) with its shortest distance."""
    dist = {key: 0}
    frontier = [key]
    while frontier:
        nxt = []
        for node in frontier:
            for p in parents.get(node, ()):
                if p not in dist:
                    dist[p] = dist[node] + 1
                    nxt.append(p)
        frontier = nxt
    return dist


def path_similarity(a: str, b: str, parents: dict[str, list[str]]) -> float:
    """1 / (1 + the shortest path between a and b through a common hypernym); 0 when they share none."""
    da, db = _ancestors(a, parents), _ancestors(b, parents)
    common = set(da) & set(db)
    if not common:
        return 0.0
    return 1.0 / (1 + min(da[c] + db[c] for c in common))


def similarity_records(split: Sequence[Synset], all_synsets: Sequence[Synset], pairs: int = 500,
                       seed: int = 0) -> list[dict[str, Any]]:
    """Noun pairs of the split, a third siblings, a third random, a third a synset and a (grand)parent's
    sibling ..., scored by path similarity (a hierarchy's distance, not a human judgment)."""
    parents = {s.key: s.hypernyms for s in all_synsets if s.pos == "n"}
    nouns = [s for s in split if s.pos == "n"]
    if len(nouns) < 2:
        return []
    by_key = {s.key: s for s in nouns}
    children: dict[str, list[str]] = defaultdict(list)
    for s in nouns:
        for h in s.hypernyms:
            children[h].append(s.key)
    rng = np.random.default_rng([seed, 11])
    seen: set[tuple[str, str]] = set()
    out = []
    for attempt in range(pairs * 20):
        if len(out) >= pairs:
            break
        a = nouns[int(rng.integers(len(nouns)))]
        if attempt % 2 == 0 and a.hypernyms:  # a related pair: a noun sharing some ancestor nearby
            near = [c for h in a.hypernyms for c in children[h] if c != a.key]
            if not near:
                continue
            b = by_key[near[int(rng.integers(len(near)))]]
        else:
            b = nouns[int(rng.integers(len(nouns)))]
        pair = (min(a.key, b.key), max(a.key, b.key))
        if a.key == b.key or pair in seen:
            continue
        seen.add(pair)
        out.append({"text": a.definition, "positive": b.definition,
                    "score": round(path_similarity(a.key, b.key, parents), 6), "id": f"{pair[0]}|{pair[1]}"})
    return out


def _write(path: Path, records: Sequence[dict[str, Any]]) -> None:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")


def write_wordnet_pairs(folder: str | Path, seed: int = 0, dev: int = 500, test: int = 1000,
                        train: int | None = None, similarity_pairs: int = 500,
                        files: Sequence[str | Path] | None = None) -> dict[str, Any]:
    """Write train.jsonl (pairs with hard negatives), dev.jsonl / test.jsonl (retrieval),
    similarity_test.jsonl (graded, noun pairs of the test split) and stats.json; returns the stats."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    synsets = read_synsets(files)
    splits = split_synsets(usable(synsets), seed, dev, test)
    train_rows = training_records(splits["train"], seed)
    if train is not None:
        train_rows = train_rows[:train]
    outputs = {"train": train_rows, "dev": retrieval_records(splits["dev"]),
               "test": retrieval_records(splits["test"]),
               "similarity_test": similarity_records(splits["test"], synsets, similarity_pairs, seed)}
    for name, rows in outputs.items():
        _write(folder / f"{name}.jsonl", rows)
    stats = {"source": "WordNet 3.0", "synsets": len(synsets), "usable": sum(len(v) for v in splits.values()),
             "seed": seed, **{f"{k}_rows": len(v) for k, v in outputs.items()},
             "similarity_score": "path similarity 1/(1+hypernym path length): a lexicographers' hierarchy, "
                                 "not human similarity judgments"}
    (folder / "stats.json").write_text(json.dumps(stats, indent=2), encoding="utf-8")
    return stats
