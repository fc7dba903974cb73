"""Token classification (NER-style tagging): entity decoding, entity-level scores, label alignment.

Tagging is trained per word piece but judged per entity: a prediction counts only if both its type and
its span match the gold entity exactly (CoNLL evaluation).  Decoding follows seqeval's default
(conlleval-compatible, *lenient*) mode so that scores here are comparable with published numbers:

* BIO: an entity starts at ``B-X``, or at ``I-X`` when the previous tag is ``O`` or of another type
  (an orphan ``I-`` is not dropped, it opens a new entity); ``B-X`` after ``B-X``/``I-X`` closes the old
  entity and opens a new one.
* BIOES: ``S-X`` is a one-token entity, ``B-X ... E-X`` a span.  Invalid sequences are decoded the same
  lenient way instead of raising: ``B-X`` followed by ``O`` is a one-token entity, ``I-X``/``E-X``
  after ``O``, ``E-`` or ``S-`` opens a new entity, and a type change always closes the current one.

Only malformed *tags* (unknown prefix for the scheme) raise ``ValueError``; malformed *sequences* never do.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

IGNORE_INDEX = -100
"""Label id ignored by ``torch.nn.CrossEntropyLoss`` (its default ``ignore_index``)."""

SCHEMES: dict[str, frozenset[str]] = {
    "BIO": frozenset("BI"),
    "BIOES": frozenset("BIES"),
}

Entity = tuple[str, int, int]


def _split(tag: str, allowed: frozenset[str]) -> tuple[str, str]:
    """Return ``(prefix, type)``; ``"O"`` gives ``("O", "")``."""
    if tag == "O":
        return "O", ""
    prefix, sep, typ = tag.partition("-")
    if not sep or prefix not in allowed or not typ:
        raise ValueError(f"malformed tag {tag!r} for prefixes {sorted(allowed)} (or 'O')")
    return prefix, typ


def _ends(prev: str, prev_type: str, tag: str, typ: str) -> bool:
    """Does the entity open at the previous token end before the current one? (conlleval rules)"""
    if prev in ("E", "S"):
        return True
    if prev in ("B", "I") and tag in ("B", "S", "O"):
        return True
    return prev != "O" and prev_type != typ


def _starts(prev: str, prev_type: str, tag: str, typ: str) -> bool:
    """Does an entity start at the current token? (conlleval rules)"""
    if tag in ("B", "S"):
        return True
    if prev in ("E", "S", "O") and tag in ("I", "E"):
        return True
    return tag != "O" and prev_type != typ


def entities(tags: Sequence[str], scheme: str = "BIO") -> list[Entity]:
    """Decode a tag sequence into ``(type, start, end)`` entities, ``end`` exclusive, in order.

    Lenient like seqeval's default mode (see the module docstring) because that is what CoNLL scores
    are reported with; a model emitting an orphan ``I-PER`` still gets credit if the span is right.
    """
    if scheme not in SCHEMES:
        raise ValueError(f"unknown scheme {scheme!r}; expected one of {sorted(SCHEMES)}")
    allowed = SCHEMES[scheme]
    found: list[Entity] = []
    prev, prev_type, begin = "O", "", -1
    for i, tag in enumerate(tags):
        cur, typ = _split(tag, allowed)
        if begin >= 0 and _ends(prev, prev_type, cur, typ):
            found.append((prev_type, begin, i))
            begin = -1
        if _starts(prev, prev_type, cur, typ):
            begin = i
        prev, prev_type = cur, typ
    if begin >= 0:
        found.append((prev_type, begin, len(tags)))
    return found


def _prf(tp: int, fp: int, fn: int) -> dict[str, float]:
    """Precision/recall/F1 with 0 (not NaN) for empty denominators, as seqeval's default does."""
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "tp": tp,
        "fp": fp,
        "fn": fn,
        "support": tp + fn,
    }


def entity_scores(gold: Sequence[Sequence[str]], pred: Sequence[Sequence[str]], scheme: str = "BIO") -> dict:
    """Micro-averaged entity-level scores, overall and per type.

    An entity is a true positive only on an exact match of sentence, type, start and end; a predicted
    entity with the right type but a wrong boundary is both a false positive and a false negative.

    Returns ``{"precision", "recall", "f1", "tp", "fp", "fn", "support", "per_type": {type: {...same
    keys...}}}``; ``per_type`` covers every type seen in gold or predictions.
    """
    if len(gold) != len(pred):
        raise ValueError(f"{len(gold)} gold sentences but {len(pred)} predicted")
    gold_set: set[tuple[int, str, int, int]] = set()
    pred_set: set[tuple[int, str, int, int]] = set()
    for n, (g, p) in enumerate(zip(gold, pred, strict=True)):
        if len(g) != len(p):
            raise ValueError(f"sentence {n}: {len(g)} gold tags but {len(p)} predicted")
        gold_set.update((n, *e) for e in entities(g, scheme))
        pred_set.update((n, *e) for e in entities(p, scheme))
    tp_set = gold_set & pred_set
    result: dict = _prf(len(tp_set), len(pred_set - tp_set), len(gold_set - tp_set))
    types = sorted({e[1] for e in gold_set | pred_set})
    result["per_type"] = {
        t: _prf(
            sum(e[1] == t for e in tp_set),
            sum(e[1] == t for e in pred_set - tp_set),
            sum(e[1] == t for e in gold_set - tp_set),
        )
        for t in types
    }
    return result


def align_labels(
    word_labels: Sequence[str],
    word_ids: Sequence[int | None],
    label2id: Mapping[str, int],
    label_all_pieces: bool = False,
) -> list[int]:
    """Map one label per word to one label id per word piece.

    ``word_ids`` is what a fast tokenizer's ``encoding.word_ids()`` returns: ``None`` for special
    tokens, else the index of the word a piece came from.  Special tokens get ``-100`` so the loss
    ignores them.  The first piece of a word gets the word's label; later pieces get ``-100`` (the
    BERT paper's choice, and what makes piece-level predictions decode back to one tag per word) unless
    ``label_all_pieces``, in which case they repeat the label with ``B-`` turned into ``I-`` so the
    piece sequence is still valid BIO (the ``I-`` label must then be in ``label2id``).
    """
    ids: list[int] = []
    previous: int | None = None
    for word in word_ids:
        if word is None:
            ids.append(IGNORE_INDEX)
        elif word != previous:
            ids.append(label2id[word_labels[word]])
        elif label_all_pieces:
            label = word_labels[word]
            if label.startswith("B-"):
                label = "I-" + label[2:]
            ids.append(label2id[label])
        else:
            ids.append(IGNORE_INDEX)
        previous = word
    return ids
