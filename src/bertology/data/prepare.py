"""`prepare_corpus`: raw text to memory-mapped token shards for pretraining.

The pipeline streams: the main process reads documents line by line, hands batches of them to worker
processes that split sentences, tokenize (the Rust tokenizer, no special tokens) and mark word starts,
and appends the results, in input order, to the shard files. Only a few batches are in flight at once,
so memory does not grow with the corpus, and the order of results never depends on timing, so the
shards are byte-identical for the same inputs and options whatever the number of workers.
"""

from __future__ import annotations

import contextlib
import json
import logging
import multiprocessing
import os
import re
import shutil
import time
from collections import deque
from collections.abc import Generator, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from itertools import chain
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ConfigError
from ..tokenization.words import (
    cjk_token_table,
    continuation_table,
    is_cjk_point,
    jieba_word_begins,
    load_jieba,
    unk_id,
    word_id_starts,
)
from ..utils.io import atomic_write
from ..utils.table import format_table
from ..utils.typed import Where, as_where, check_choice, check_fields, parse
from .parallel import (
    PARALLEL_SKIP_REASONS,
    check_languages,
    iter_parallel_documents,
    keep_whole_pairs,
    parallel_inputs,
    split_pair,
)
from .sentences import LANGUAGES, has_cjk, split_sentences
from .shards import (
    FORMAT_VERSION,
    META_FILE,
    PINYIN_WIDTH,
    SHARD_PREFIX,
    CorpusError,
    ShardWriter,
    token_dtype,
    tokenizer_description,
    write_meta,
)
from .sources import (
    INPUT_FORMATS,
    SKIP_REASONS,
    Document,
    LineReader,
    SkipLog,
    iter_documents,
    list_input_files,
)

__all__ = ["PrepareConfig", "PrepareSummary", "prepare_corpus"]

SUMMARY_FILE = "summary.md"
#: the input formats of `prepare_corpus`: the document readers' (sources.py), and sentence pairs (parallel.py)
PREPARE_INPUT_FORMATS = (*INPUT_FORMATS, "parallel")
#: the summary's words for every reason something is left out
_SKIP_WORDS = {**SKIP_REASONS, **PARALLEL_SKIP_REASONS}
_CHINESE_WORDS = ("jieba", None)
_log = logging.getLogger(__name__)


@dataclass
class PrepareSummary:
    """What a preparation run read, wrote and left out (with reasons and example locations)."""

    files: int = 0
    documents: int = 0
    sentences: int = 0
    tokens: int = 0
    shards: int = 0
    bytes_read: int = 0
    seconds: float = 0.0
    #: sentences longer than max_sentence_tokens, cut into chunks (kept, not dropped)
    long_sentences: int = 0
    #: sentences added by those cuts
    extra_chunks: int = 0
    skipped: dict[str, int] = field(default_factory=dict)
    examples: dict[str, list[str]] = field(default_factory=dict)

    @property
    def tokens_per_second(self) -> float:
        return self.tokens / self.seconds if self.seconds > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["tokens_per_second"] = round(self.tokens_per_second, 1)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PrepareSummary:
        names = cls.__dataclass_fields__
        return cls(**{k: v for k, v in data.items() if k in names})

    def rows(self) -> list[tuple[str, str, str]]:
        """(what, count, note) rows: totals first, then every reason anything was left out or cut."""
        rows = [
            ("files", f"{self.files:,}", ""),
            ("bytes read", f"{self.bytes_read:,}", ""),
            ("documents", f"{self.documents:,}", ""),
            ("sentences", f"{self.sentences:,}", ""),
            ("tokens", f"{self.tokens:,}", ""),
            ("shards", f"{self.shards:,}", ""),
            ("seconds", f"{self.seconds:,.2f}", ""),
            ("tokens/s", f"{self.tokens_per_second:,.0f}", ""),
        ]
        if self.long_sentences:
            rows.append(("long sentences cut into chunks", f"{self.long_sentences:,}",
                         f"{self.extra_chunks:,} extra sentences"))
        for reason in sorted(self.skipped, key=lambda r: (list(_SKIP_WORDS).index(r) if r in _SKIP_WORDS else 99, r)):
            rows.append((f"skipped: {_SKIP_WORDS.get(reason, reason)}", f"{self.skipped[reason]:,}",
                         ", ".join(self.examples.get(reason, []))))
        if not self.skipped:
            rows.append(("skipped", "0", "nothing was left out"))
        return rows

    def to_table(self) -> str:
        return format_table(("what", "count", "where / note"), self.rows())

    def to_markdown(self) -> str:
        return format_table(("what", "count", "where / note"), self.rows(), markdown=True)


# ------------------------------------------------------------------------------------------ the work


@dataclass
class _Options:
    tokenizer_json: str
    dtype: str
    language: str
    chinese_words: str | None
    record_case: bool
    max_sentence_tokens: int
    record_pinyin: bool = False
    #: each document is a sentence pair: its two sides are its sentences (see data/parallel.py)
    parallel: bool = False


@dataclass
class _BatchResult:
    tokens: np.ndarray
    word_starts: np.ndarray
    case: np.ndarray | None
    pinyin: np.ndarray | None
    sentence_lengths: np.ndarray
    document_sentences: np.ndarray
    skips: list[tuple[str, str]]
    long_sentences: int
    extra_chunks: int


def _case_class(text: str) -> int:
    # 0 none, 1 lower, 2 title (first upper, rest lower; a lone capital too), 3 upper, 4 mixed
    if text.islower():
        return 1
    if text.isupper():
        return 2 if text[:1].isupper() and not text[1:].isupper() else 3
    if text[:1].isupper() and text[1:].islower():
        return 2
    if text.swapcase() == text:
        return 0
    return 4


class _Processor:
    """Sentences, token ids, word starts and case for a batch of documents (runs in each worker)."""

    def __init__(self, options: _Options) -> None:
        import tokenizers

        self.o = options
        self.backend = tokenizers.Tokenizer.from_str(options.tokenizer_json)
        self.backend.no_truncation()
        self.backend.no_padding()
        self.dtype = np.dtype(options.dtype)
        self._case_cache: dict[str, int] = {}
        self._pinyin_encoder: Any = None
        self._jieba: Any = None
        self._cjk_tokens: np.ndarray | None = None
        # WordPiece ids tell word starts, so the faster encoder without offsets or word ids can be used;
        # other models need word ids (see tokenization/words.py, shared with AmbertTokenizer).
        self._continues: np.ndarray | None = continuation_table(self.backend)
        self._chunks: _ChunkTokens | None = None
        if self._continues is not None and _splits_at_spaces(options.tokenizer_json):
            self._chunks = _ChunkTokens(self.backend, self.dtype, self._case if options.record_case else None)

    def __call__(self, docs: Sequence[tuple[str, str]]) -> _BatchResult:
        o = self.o
        sents: list[str] = []
        counts: list[int] = []
        chinese = False
        for text, _ in docs:
            cjk = has_cjk(text)
            chinese = chinese or cjk
            if o.parallel:
                pieces = split_pair(text)
            else:
                pieces = split_sentences(text, o.language if o.language != "auto" else ("zh" if cjk else "en"))
            sents.extend(pieces)
            counts.append(len(pieces))
        jieba_words = chinese and o.chinese_words == "jieba"
        encs: list[Any] = []
        case = None
        if (self._chunks is not None and not chinese and not o.record_pinyin
                and not any(_UNSAFE_SPACE.search(text) for text, _ in docs)):
            tokens, lengths, case = self._chunks(sents)
        else:
            # Offsets cost time; only jieba word starts and case classes need them.
            if o.record_case or o.record_pinyin or jieba_words or self._continues is None:
                encs = self.backend.encode_batch(sents, add_special_tokens=False)
            else:
                encs = self.backend.encode_batch_fast(sents, add_special_tokens=False)
            lengths = np.fromiter(map(len, encs), dtype=np.int64, count=len(encs))
            tokens = np.fromiter(chain.from_iterable(e.ids for e in encs), dtype=self.dtype,
                                 count=int(lengths.sum()))
            if o.record_case:
                case = self._case(sents, encs, len(tokens))
        total = len(tokens)
        starts = np.cumsum(lengths) - lengths
        if self._continues is not None:
            word_starts = (~self._continues[tokens]).astype(np.uint8)
            word_starts[starts[lengths > 0]] = 1
        else:
            word_starts = self._word_starts(encs, lengths, starts, total)
        if jieba_words:
            if self._jieba is None:
                self._jieba = load_jieba()  # only once Chinese text shows up: it takes a second
            self._jieba_word_starts(sents, encs, tokens, starts, word_starts)
        pinyin = self._pinyin(sents, encs, total) if o.record_pinyin else None
        if o.parallel:
            return self._pairs(docs, tokens, word_starts, case, pinyin, lengths)

        skips: list[tuple[str, str]] = []
        doc_sents = np.asarray(counts, dtype=np.int64)
        if len(lengths) and not lengths.all():
            # Drop sentences without tokens, then documents left without sentences.
            # A document left with no sentence counts once, as an empty document.
            doc_of = np.repeat(np.arange(len(docs)), doc_sents)
            empty = np.flatnonzero(lengths == 0)
            doc_sents = doc_sents - np.bincount(doc_of[empty], minlength=len(docs))
            for i in empty:
                if doc_sents[doc_of[i]] > 0:
                    skips.append(("empty_sentence", docs[doc_of[i]][1]))
            lengths = lengths[lengths > 0]
        for d in np.flatnonzero(doc_sents == 0):
            skips.append(("empty_document", docs[d][1]))
        long_sentences = extra = 0
        limit = o.max_sentence_tokens
        if len(lengths) and lengths.max() > limit:
            lengths, doc_sents, long_sentences, extra = self._chunk(lengths, doc_sents, word_starts, limit)
        return _BatchResult(tokens, word_starts, case, pinyin, lengths, doc_sents[doc_sents > 0], skips,
                            long_sentences, extra)

    def _pairs(self, docs: Sequence[tuple[str, str]], tokens: np.ndarray, word_starts: np.ndarray,
               case: np.ndarray | None, pinyin: np.ndarray | None, lengths: np.ndarray) -> _BatchResult:
        """A batch of sentence pairs: whole pairs kept (two sentences a document) or dropped and counted."""
        keep, skips = keep_whole_pairs(lengths, [where for _, where in docs], self.o.max_sentence_tokens)
        if not keep.all():
            token_keep = np.repeat(keep, lengths)
            tokens, word_starts = tokens[token_keep], word_starts[token_keep]
            case = case[token_keep] if case is not None else None
            pinyin = pinyin[token_keep] if pinyin is not None else None
        kept = lengths[keep]
        return _BatchResult(tokens, word_starts, case, pinyin, kept, np.full(len(kept) // 2, 2, dtype=np.int64),
                            skips, 0, 0)

    @staticmethod
    def _word_starts(encs: list[Any], lengths: np.ndarray, starts: np.ndarray, total: int) -> np.ndarray:
        try:
            wids = np.fromiter(chain.from_iterable(e.word_ids for e in encs), dtype=np.int64, count=total)
        except TypeError:  # a None word id (an added token in the text): it stands alone
            wids = np.array([-1 if w is None else w for e in encs for w in e.word_ids], dtype=np.int64)
        ws = word_id_starts(wids)
        ws[starts[lengths > 0]] = 1
        return ws

    def _jieba_word_starts(self, sents: list[str], encs: list[Any], tokens: np.ndarray, starts: np.ndarray,
                           ws: np.ndarray) -> None:
        """A CJK character token starts a word only where a jieba word starts (Chinese whole-word masking).

        What `mark_jieba_starts` does per sentence, for the whole batch at once: the batch's Chinese sentences
        are joined with newlines (which jieba never puts inside a word, so each sentence is cut as on its own)
        and segmented by `JiebaWordBegins`, which gives jieba's words without jieba's per-character Python.
        """
        if self._cjk_tokens is None:
            self._cjk_tokens = cjk_token_table(self.backend)
        chosen = [i for i, sent in enumerate(sents) if len(encs[i]) and has_cjk(sent)]
        if not chosen:
            return
        texts = [sents[i] for i in chosen]
        text_lengths = np.fromiter(map(len, texts), dtype=np.int64, count=len(texts))
        text_at = np.cumsum(text_lengths + 1) - (text_lengths + 1)
        joined = "\n".join(texts)
        begins = jieba_word_begins(self._jieba)(joined)
        counts = np.fromiter((len(encs[i]) for i in chosen), dtype=np.int64, count=len(chosen))
        n = int(counts.sum())
        offsets = np.fromiter(chain.from_iterable(chain.from_iterable(encs[i].offsets for i in chosen)),
                              dtype=np.int64, count=2 * n).reshape(n, 2)
        local = np.arange(n) - np.repeat(np.cumsum(counts) - counts, counts)
        rows = np.repeat(starts[chosen], counts) + local
        sentence_at = np.repeat(text_at, counts)
        ids = tokens[rows]
        is_cjk = self._cjk_tokens[ids]
        first = offsets[:, 0]
        unknown = np.flatnonzero(ids == unk_id(self.backend))
        if len(unknown):  # an unknown token is a CJK character token if its one character is an ideograph
            points = np.frombuffer(joined.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
            one_char = offsets[unknown, 1] - first[unknown] == 1
            last = np.repeat(text_lengths, counts)[unknown] - 1
            at = sentence_at[unknown] + np.minimum(first[unknown], last)
            is_cjk[unknown] = one_char & is_cjk_point(points[at])
        ws[rows[is_cjk]] = begins[sentence_at[is_cjk] + first[is_cjk]]

    def _pinyin(self, sents: list[str], encs: list[Any], total: int) -> np.ndarray:
        """Pinyin ids per token from each sentence's own text, so heteronyms are read in context."""
        if self._pinyin_encoder is None:
            from ..tokenization.pinyin import PinyinEncoder

            self._pinyin_encoder = PinyinEncoder()
        out = np.zeros((total, PINYIN_WIDTH), dtype=np.uint8)
        at = 0
        for sent, enc in zip(sents, encs, strict=True):
            n = len(enc.ids)
            if n and has_cjk(sent):
                out[at:at + n] = self._pinyin_encoder.encode(sent, enc.offsets)
            at += n
        return out

    def _case(self, sents: list[str], encs: list[Any], total: int) -> np.ndarray:
        cache = self._case_cache
        if len(cache) > 500_000:
            cache.clear()
        out = np.zeros(total, dtype=np.uint8)
        k = 0
        for sent, enc in zip(sents, encs, strict=True):
            for a, b in enc.offsets:
                piece = sent[a:b]
                value = cache.get(piece)
                if value is None:
                    value = cache[piece] = _case_class(piece)
                out[k] = value
                k += 1
        return out

    @staticmethod
    def _chunk(lengths: np.ndarray, doc_sents: np.ndarray, ws: np.ndarray, limit: int):
        """Cut sentences over `limit` tokens into chunks, preferring cuts at word starts."""
        new_lengths: list[int] = []
        doc_of = np.repeat(np.arange(len(doc_sents)), doc_sents)
        doc_sents = doc_sents.copy()
        long_sentences = extra = 0
        pos = 0
        for i, n in enumerate(lengths.tolist()):
            if n <= limit:
                new_lengths.append(n)
                pos += n
                continue
            long_sentences += 1
            end = pos + n
            while end - pos > limit:
                window = np.flatnonzero(ws[pos + 1:pos + limit + 1])
                cut = pos + 1 + int(window[-1]) if len(window) else pos + limit
                new_lengths.append(cut - pos)
                doc_sents[doc_of[i]] += 1
                extra += 1
                pos = cut
            new_lengths.append(end - pos)
            pos = end
        return np.asarray(new_lengths, dtype=np.int64), doc_sents, long_sentences, extra


# Characters Python's str.split() splits at but BERT's normalizer deletes (controls), joining their neighbours.
_UNSAFE_SPACE = re.compile("[\x0b\x0c\x1c-\x1f\x85]")


def _splits_at_spaces(tokenizer_json: str) -> bool:
    """True if the tokenizer never joins text across whitespace, so a sentence's tokens are those of its
    whitespace-separated chunks in order: BERT's normalizer (per character) and pre-tokenizer (splits at
    whitespace), WordPiece (word by word), and added tokens that hold no space and do not look around."""
    spec = json.loads(tokenizer_json)

    def kind(part: Any) -> Any:
        return part.get("type") if isinstance(part, dict) else None

    if (kind(spec.get("normalizer")), kind(spec.get("pre_tokenizer")), kind(spec.get("model"))) != \
            ("BertNormalizer", "BertPreTokenizer", "WordPiece"):
        return False
    return all(t.get("content") and not any(ch.isspace() for ch in t["content"])
               and not (t.get("single_word") or t.get("lstrip") or t.get("rstrip"))
               for t in spec.get("added_tokens") or [])


class _ChunkTokens:
    """Token ids (and case classes) of sentences, built from their whitespace-separated chunks, each distinct
    chunk tokenized once per worker and then looked up.

    English repeats its words (2.5M tokens of fortunes and WordNet hold 158k distinct chunks), and the Rust
    tokenizer spends most of its time per character, so this makes English tokenization several times faster.
    Only used where `_splits_at_spaces` holds, so the tokens are exactly those of whole sentences.
    """

    #: forget every chunk past this many, so memory stays bounded on a huge corpus
    max_chunks = 1_000_000

    def __init__(self, backend: Any, dtype: np.dtype, case: Any) -> None:
        self.backend = backend
        self.dtype = dtype
        self.case_of = case  # _Processor._case when case classes are recorded, else None
        self._reset()

    def _reset(self) -> None:
        self.index: dict[str, int] = {}
        self.ids = np.zeros(0, dtype=self.dtype)
        self.case = np.zeros(0, dtype=np.uint8)
        self.starts = np.zeros(0, dtype=np.int64)
        self.lengths = np.zeros(0, dtype=np.int64)

    def _add(self, chunks: list[str]) -> None:
        """Tokenize new chunks in one batch and append them to the flat store."""
        if self.case_of is not None:
            encs = self.backend.encode_batch(chunks, add_special_tokens=False)
        else:
            encs = self.backend.encode_batch_fast(chunks, add_special_tokens=False)
        lengths = np.fromiter(map(len, encs), dtype=np.int64, count=len(encs))
        total = int(lengths.sum())
        ids = np.fromiter(chain.from_iterable(e.ids for e in encs), dtype=self.dtype, count=total)
        base = len(self.ids)
        self.starts = np.concatenate([self.starts, base + np.cumsum(lengths) - lengths])
        self.lengths = np.concatenate([self.lengths, lengths])
        self.ids = np.concatenate([self.ids, ids])
        if self.case_of is not None:
            self.case = np.concatenate([self.case, self.case_of(chunks, encs, total)])
        first = len(self.index)
        self.index.update(zip(chunks, range(first, first + len(chunks)), strict=True))

    def __call__(self, sents: list[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """(token ids, tokens per sentence, case classes or None) of `sents`."""
        split = list(map(str.split, sents))
        per_sentence = np.fromiter(map(len, split), dtype=np.int64, count=len(split))
        chunks = list(chain.from_iterable(split))
        index = self.index
        new = [c for c in dict.fromkeys(chunks) if c not in index]
        if len(index) + len(new) > self.max_chunks:
            self._reset()
            new = list(dict.fromkeys(chunks))
        if new:
            self._add(new)
        which = np.fromiter(map(self.index.__getitem__, chunks), dtype=np.int64, count=len(chunks))
        lengths = self.lengths[which]
        ends = np.cumsum(lengths)
        total = int(ends[-1]) if len(ends) else 0
        at = np.repeat(self.starts[which] - (ends - lengths), lengths) + np.arange(total)
        tokens = self.ids[at]
        case = self.case[at] if self.case_of is not None else None
        bounds = np.concatenate([[0], ends])
        chunk_end = np.cumsum(per_sentence)
        sentence_lengths = bounds[chunk_end] - bounds[chunk_end - per_sentence]
        return tokens, sentence_lengths, case


_WORKER: _Processor | None = None


def _init_worker(options: _Options) -> None:
    global _WORKER
    os.environ["TOKENIZERS_PARALLELISM"] = "false"  # one core per worker: the pool is the parallelism
    _WORKER = _Processor(options)


def _work(docs: list[tuple[str, str]]) -> _BatchResult:
    assert _WORKER is not None
    return _WORKER(docs)


# ---------------------------------------------------------------------------------------- driving


def _batches(documents: Iterator[Document], batch_docs: int, batch_chars: int) -> Iterator[list[tuple[str, str]]]:
    batch: list[tuple[str, str]] = []
    chars = 0
    for doc in documents:
        batch.append((doc.text, doc.location))
        chars += len(doc.text)
        if len(batch) >= batch_docs or chars >= batch_chars:
            yield batch
            batch, chars = [], 0
    if batch:
        yield batch


@contextlib.contextmanager
def _env(**values: str) -> Iterator[None]:
    before = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in before.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _results(batches: Iterable[list[tuple[str, str]]], options: _Options,
             workers: int) -> Generator[_BatchResult, None, None]:
    """Process batches in input order: in this process for one worker, else in a process pool with a
    bounded number of batches in flight (Pool.imap would read the whole corpus ahead)."""
    if workers <= 1:
        with _env(TOKENIZERS_PARALLELISM="false"):
            processor = _Processor(options)
            for batch in batches:
                yield processor(batch)
        return
    # Workers start from a fresh interpreter (forkserver, else spawn), never by forking this process: a fork
    # copies whatever locks other threads hold at that moment (a progress bar's monitor, a logging handler,
    # a thread pool), and a worker that inherits a held lock waits forever. Each worker loads jieba itself.
    methods = multiprocessing.get_all_start_methods()
    context = multiprocessing.get_context("forkserver" if "forkserver" in methods else "spawn")
    if context.get_start_method() == "forkserver":
        # The server imports this module (and torch under it) once and forks each worker from its single
        # thread, so a worker starts in milliseconds, not the ~1.5 s of a fresh import (English prepared at
        # 550k tokens/s without this, 980k with plain fork).
        context.set_forkserver_preload([__name__])
    with _env(TOKENIZERS_PARALLELISM="false"), context.Pool(workers, _init_worker, (options,)) as pool:
        pending: deque = deque()
        for batch in batches:
            pending.append(pool.apply_async(_work, (batch,)))
            if len(pending) > 2 * workers:
                yield pending.popleft().get()
        while pending:
            yield pending.popleft().get()


def _prepare_output(output: Path, overwrite: bool) -> None:
    if output.exists() and not output.is_dir():
        raise CorpusError(f"output {output} exists and is not a folder")
    output.mkdir(parents=True, exist_ok=True)
    entries = sorted(output.iterdir())
    if not entries:
        return
    if not overwrite:
        if not _interrupted_leftovers(entries):
            raise CorpusError(f"output folder {output} is not empty; pass overwrite=True (--overwrite) to replace it")
        # An interrupted preparation (no meta.json, only shards and temporaries): restart from scratch. Resuming
        # would need the inputs and options to be proved identical; restarting costs one run and can never mix
        # shards of two runs.
        _log.warning("%s holds an unfinished preparation (no %s): its shards are removed and preparation "
                     "starts again", output, META_FILE)
    # meta.json goes first: from then on the folder reads as unfinished until the new one is written.
    (output / META_FILE).unlink(missing_ok=True)
    for entry in entries:
        name = entry.name
        if entry.is_dir() and (name.startswith(SHARD_PREFIX) or name.startswith(f".{SHARD_PREFIX}")):
            shutil.rmtree(entry)
        elif name == SUMMARY_FILE:
            entry.unlink()


def _interrupted_leftovers(entries: list[Path]) -> bool:
    """Whether a folder's entries are exactly what an interrupted `prepare_corpus` leaves: no meta.json, and
    nothing but finished shards, shard temporaries and the summary (so no user file is ever removed)."""
    names = [entry.name for entry in entries]
    if META_FILE in names:
        return False
    return all(
        (entry.is_dir() and not entry.is_symlink() and _SHARD_NAME.fullmatch(entry.name))
        or (entry.name == SUMMARY_FILE and entry.is_file() and not entry.is_symlink())
        for entry in entries
    )


_SHARD_NAME = re.compile(rf"\.?{re.escape(SHARD_PREFIX)}\d{{5,}}(?:\.tmp)?")


@dataclass
class PrepareConfig:
    """How a corpus is read, split, tokenized and sharded: every option of `prepare_corpus` but the inputs,
    the output folder and the tokenizer. Checked when built, so a bad option fails before any file is read."""

    #: "text" (documents separated by blank lines), "jsonl", "pku" or "parallel" (sentence pairs, see
    #: data/parallel.py)
    input_format: str = "text"
    #: sentence-splitting rules: "auto" (zh for documents with CJK ideographs), "en" or "zh"
    language: str = "auto"
    #: "jieba": a CJK character starts a word only where a jieba word starts; None ("none"): every character
    chinese_words: str | None = "jieba"
    record_case: bool = False
    record_pinyin: bool = False
    workers: int = 2
    #: start a new shard past this many tokens
    shard_tokens: int = 50_000_000
    #: documents and characters per batch handed to a worker
    batch_docs: int = 1024
    batch_chars: int = 400_000
    #: longer lines are skipped (and counted)
    max_line_chars: int = 100_000
    #: longer sentences are cut into chunks (and counted)
    max_sentence_tokens: int = 4096
    #: the JSONL field holding the text
    text_field: str = "text"
    #: text format: each file, or each line, is one document
    doc_per_file: bool = False
    doc_per_line: bool = False
    #: replace an existing prepared corpus in the output folder
    overwrite: bool = False
    progress: bool = True
    #: parallel format: the two language names, source then target (e.g. ["en", "zh"])
    languages: list[str] | None = None

    def __post_init__(self) -> None:
        self.validate()

    def validate(self, where: str | Where = "") -> None:
        """Raise ConfigError naming the first option with a wrong type or an impossible value."""
        where = as_where(where)
        if self.chinese_words == "none":
            self.chinese_words = None
        check_fields(self, where)
        check_choice(where, "input_format", self.input_format, PREPARE_INPUT_FORMATS)
        if self.input_format == "parallel":
            self.languages = check_languages(self.languages, str(where))
        elif self.languages is not None:
            raise ConfigError(f"{where}field 'languages' applies to the parallel format, not {self.input_format!r}")
        check_choice(where, "language", self.language, LANGUAGES)
        check_choice(where, "chinese_words", self.chinese_words, _CHINESE_WORDS)
        if self.doc_per_file and self.doc_per_line:
            raise ConfigError(f"{where}choose at most one of doc_per_file and doc_per_line")
        if self.input_format != "text" and (self.doc_per_file or self.doc_per_line):
            raise ConfigError(f"{where}doc_per_file / doc_per_line apply to the text format, "
                              f"not {self.input_format!r}")
        for name in ("workers", "batch_docs", "batch_chars", "max_line_chars", "max_sentence_tokens",
                     "shard_tokens"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{where}field '{name}' must be a positive int, got {getattr(self, name)!r}")


def prepare_corpus(
    inputs: Sequence[str | os.PathLike] | str | os.PathLike,
    output: str | os.PathLike,
    tokenizer: Any,
    config: PrepareConfig | None = None,
    **options: Any,
) -> PrepareSummary:
    """Read, split, tokenize and shard a corpus into `output`; return (and save) the summary.

    The options are a :class:`PrepareConfig`, or its fields as keywords (`input_format="pku", workers=4`;
    a misspelt one is refused with a suggestion). `tokenizer` is a :class:`bertology.Tokenizer`. Sentences
    are tokenized without special tokens; `chinese_words="jieba"` makes a CJK character a word start only
    where a jieba word starts (what Chinese whole-word masking needs). Lines, sentences and documents left
    out are counted by reason in the summary, with file:line examples. The shards are byte-identical for
    equal inputs and options.
    """
    if config is None:
        config = parse(PrepareConfig, options, "prepare_corpus")
    elif options:
        config = parse(PrepareConfig, {**asdict(config), **options}, "prepare_corpus")
    return _prepare(inputs, output, tokenizer, config)


def _prepare(inputs: Sequence[str | os.PathLike] | str | os.PathLike, output: str | os.PathLike, tokenizer: Any,
             config: PrepareConfig) -> PrepareSummary:
    if isinstance(inputs, (str, os.PathLike)):
        inputs = [inputs]
    parallel = config.input_format == "parallel"
    # parallel inputs are checked (files exist, pairs of files aligned) before the output folder is touched
    pairs = parallel_inputs(inputs) if parallel else []
    files = [f for pair in pairs for f in pair.files] if parallel else list_input_files(inputs)
    output = Path(output)
    _prepare_output(output, config.overwrite)

    started = time.perf_counter()
    dtype = token_dtype(tokenizer.vocab_size)
    options = _Options(
        tokenizer_json=tokenizer.backend.to_str(), dtype=dtype.name, language=config.language,
        chinese_words=config.chinese_words, record_case=config.record_case,
        max_sentence_tokens=config.max_sentence_tokens, record_pinyin=config.record_pinyin, parallel=parallel,
    )
    log = SkipLog()
    reader = LineReader(config.max_line_chars, log)
    if parallel:
        documents = iter_parallel_documents(pairs, log, reader)
    else:
        documents = iter_documents(files, log, config.input_format, config.text_field, config.doc_per_file,
                                   config.doc_per_line, config.max_line_chars, reader=reader)
    writer = ShardWriter(output, dtype, config.record_case, config.shard_tokens, config.record_pinyin)
    summary = PrepareSummary(files=len(files))
    results = _results(_batches(documents, config.batch_docs, config.batch_chars), options, config.workers)
    shards = _write(results, writer, summary, log, config.progress)
    summary.shards = len(shards)
    summary.bytes_read = reader.bytes_read
    summary.skipped = {k: int(v) for k, v in sorted(log.counts.items())}
    summary.examples = {k: list(v) for k, v in sorted(log.examples.items()) if k in summary.skipped}
    summary.seconds = time.perf_counter() - started
    with atomic_write(output / SUMMARY_FILE) as handle:
        handle.write(f"# Corpus preparation summary\n\n{summary.to_markdown()}\n")
    write_meta(output, _meta(inputs, config, tokenizer, dtype, summary, shards))
    return summary


def _write(results: Generator[_BatchResult, None, None], writer: ShardWriter, summary: PrepareSummary, log: SkipLog,
           progress: bool) -> list[Any]:
    """Append each batch's results to the shards, counting into the summary; the shards written."""
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(unit="tok", unit_scale=True, desc="tokenizing", leave=False)
    try:
        for result in results:
            writer.add(result.tokens, result.word_starts, result.case, result.sentence_lengths,
                       result.document_sentences, result.pinyin)
            summary.documents += len(result.document_sentences)
            summary.sentences += len(result.sentence_lengths)
            summary.tokens += len(result.tokens)
            summary.long_sentences += result.long_sentences
            summary.extra_chunks += result.extra_chunks
            for reason, where in result.skips:
                log.skip(reason, where)
            if bar is not None:
                bar.update(len(result.tokens))
        return writer.close()
    except BaseException:
        writer.abort()
        raise
    finally:
        results.close()  # stops the worker pool now, even when the error came from this loop
        if bar is not None:
            bar.close()


def _meta(inputs: Sequence[str | os.PathLike], config: PrepareConfig, tokenizer: Any, dtype: np.dtype,
          summary: PrepareSummary, shards: list[Any]) -> dict[str, Any]:
    """meta.json: what the shards hold, and the options that made them (so a folder can be remade)."""
    c = config
    meta = {
        "format_version": FORMAT_VERSION,
        "token_dtype": dtype.name,
        "record_case": bool(c.record_case),
        "record_pinyin": bool(c.record_pinyin),
        "tokenizer": tokenizer_description(tokenizer),
        "counts": {"documents": summary.documents, "sentences": summary.sentences, "tokens": summary.tokens},
        "options": {
            "inputs": [str(p) for p in inputs], "input_format": c.input_format, "language": c.language,
            "chinese_words": c.chinese_words, "record_case": c.record_case, "record_pinyin": c.record_pinyin,
            "shard_tokens": c.shard_tokens,
            "max_line_chars": c.max_line_chars, "max_sentence_tokens": c.max_sentence_tokens,
            "text_field": c.text_field, "doc_per_file": c.doc_per_file, "doc_per_line": c.doc_per_line,
        },
        "summary": summary.to_dict(),
        "shards": shards,
    }
    if c.input_format == "parallel":  # each document a sentence pair (source, target) in these languages
        meta["options"]["languages"] = list(c.languages or [])
        meta["parallel"] = True
        meta["languages"] = list(c.languages or [])
    return meta
