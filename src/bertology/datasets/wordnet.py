"""WordNet glosses labelled with their synset's lexicographer file (45 classes), from Debian's wordnet-base."""

from __future__ import annotations

import gzip
import re
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..assets import wordnet_data_files
from .corpus import Corpus, CorpusFormatError, deduplicate

__all__ = ["LEXNAMES", "lexnames_from_manpage", "parse_wordnet_line", "wordnet_lexnames"]

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
