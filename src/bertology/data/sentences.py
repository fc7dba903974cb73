"""Sentence splitting for English and Chinese, regex based: fast enough not to be the bottleneck.

Pretraining only needs sentence boundaries that are mostly right (they decide where segments may be
cut), so this keeps to punctuation rules plus an abbreviation list rather than a trained model.
"""

from __future__ import annotations

import re

__all__ = ["LANGUAGES", "has_cjk", "split_sentences"]

LANGUAGES = ("auto", "en", "zh")

_CJK = re.compile(
    "[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0002a6df\U0002a700-\U0002ebef\U00030000-\U0003134f]"
)

# A candidate English boundary: terminal punctuation (with closing quotes/brackets), whitespace, then
# something that can open a sentence (capital, digit, opening quote or bracket).
_EN_BOUNDARY = re.compile(r"""([.!?…]+["'”’)\]]*)\s+(?=["'“‘(\[]?[A-Z0-9])""")
# Inside Chinese text an English sentence may also be followed by a Chinese one.
_MIXED_BOUNDARY = re.compile(
    r"""([.!?…]+["'”’)\]]*)\s+(?=["'“‘(\[]?[A-Z0-9\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff])"""
)
# Chinese terminators (full-width and the ASCII !? common in Chinese text), then closing quotes; or newlines.
_ZH_BOUNDARY = re.compile(r"""[。！？；｡!?]+[”’」』"）)》]*|\n+""")
_INITIALISM = re.compile(r"^(?:[A-Za-z]\.)+[A-Za-z]?$")
_ABBREVIATIONS = frozenset(
    """mr mrs ms mx dr prof rev hon gen col capt lt sgt cpl maj adm gov sen rep pres st mt ft jr sr
    vs v no nos fig figs vol vols pp op cf ca approx dept est inc ltd co corp bros ave blvd
    jan feb mar apr jun jul aug sep sept oct nov dec""".split()
)
_OPENERS = "\"'“‘([{"


def has_cjk(text: str) -> bool:
    """True if `text` holds at least one CJK ideograph (what "auto" uses to pick Chinese rules)."""
    return _CJK.search(text) is not None


def _keeps_period(text: str, end: int) -> bool:
    """True if the period ending at `end` belongs to an abbreviation or initial, not a sentence end."""
    start = max(text.rfind(" ", 0, end), text.rfind("\n", 0, end), text.rfind("\t", 0, end)) + 1
    word = text[start:end].lstrip(_OPENERS)
    if not word:
        return False
    if len(word) == 1 and word.isalpha():  # an initial: "J. Smith"
        return True
    return word.lower() in _ABBREVIATIONS or _INITIALISM.match(word) is not None  # "e.g", "U.S"


def _split_en(text: str, out: list[str], boundary: re.Pattern = _EN_BOUNDARY) -> None:
    start = 0
    for m in boundary.finditer(text):
        punct = m.group(1)
        if punct[0] == "." and not punct.startswith("..") and _keeps_period(text, m.start(1)):
            continue
        piece = text[start:m.end(1)].strip()
        if piece:
            out.append(piece)
        start = m.end()
    piece = text[start:].strip()
    if piece:
        out.append(piece)


def _split_zh(text: str, out: list[str]) -> None:
    start = 0
    for m in _ZH_BOUNDARY.finditer(text):
        piece = text[start:m.end()]
        start = m.end()
        # Mixed text: an English run inside a Chinese piece still splits on English rules.
        _split_en(piece, out, _MIXED_BOUNDARY)
    if start < len(text):
        _split_en(text[start:], out, _MIXED_BOUNDARY)


def split_sentences(text: str, language: str = "auto") -> list[str]:
    """The sentences of `text`, each stripped of surrounding whitespace; empty pieces are dropped.

    "en": split after . ! ? (and closing quotes) when whitespace and a capital, digit or opening quote
    follow, except after abbreviations (Mr. Dr. e.g. i.e. U.S. ...) and initials. "zh": split after
    。！？；(and ASCII !?) plus any closing quotes, and at newlines, then apply the English rule inside
    each piece (where a CJK ideograph may also open a sentence) so mixed text works. "auto": "zh" if the text holds a CJK ideograph, else "en".
    """
    if language == "auto":
        language = "zh" if _CJK.search(text) else "en"
    out: list[str] = []
    if language == "en":
        _split_en(text, out)
    elif language == "zh":
        _split_zh(text, out)
    else:
        raise ValueError(f"language must be one of {list(LANGUAGES)}, got {language!r}")
    return out
