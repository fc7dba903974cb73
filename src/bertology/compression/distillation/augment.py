"""TinyBERT's data augmentation for task distillation (Jiao et al., 2020, Algorithm 1).

A small task set gives a student too few teacher outputs to imitate, so each example is copied N times
with some of its words replaced by plausible alternatives:

* a word that is one WordPiece token is masked in its sentence and replaced by one of the teacher MLM's
  top-K predictions (whole words only: no ``##`` pieces, no special or ``[...]`` tokens);
* a word of several pieces (which one [MASK] cannot stand for) is replaced by one of its K nearest
  neighbours (cosine) in a word-vector space: a word2vec/GloVe text file, the teacher's own input
  embeddings (a word = the mean of its pieces), or vectors trained on the task corpus with gensim.

Each replaceable word (one holding a letter, digit or ideograph: punctuation is kept) is replaced with
probability ``p``; the original word is never among its candidates, so ``p`` is the replacement rate.
As in the reference implementation, a word's MLM candidates come from masking it in the *original*
sentence: they are computed once per word and shared by all N copies, so the teacher runs once per
single-piece word rather than once per word per copy. Every masked position of a sentence is its own row
of one batch. Text outside the replaced words (spacing, punctuation, case) is kept as written, so
``p=0`` gives copies equal to the original.

Randomness comes from one ``random.Random`` per example, seeded from the options' seed and the example's
index, so the output does not depend on batch or chunk sizes, nor on any global random state.

:func:`augment_file` turns a task file (jsonl, csv, tsv) into a jsonl file of the originals, each followed
by its copies (every other field, the label included, as it was); it writes atomically and reuses an
output made from the same input, teacher and options (a sidecar JSON records them).
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import io
import json
import math
import os
import random
import re
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tokenizers import pre_tokenizers
from tqdm.auto import tqdm

from ...errors import BertologyError, ConfigError, DataError
from ...tokenization.words import CJK_RANGES
from ...utils.io import atomic_write

__all__ = [
    "AugmentOptions",
    "AugmentResult",
    "Augmenter",
    "WordVectors",
    "augment_file",
    "read_word_vectors",
    "split_words",
]

#: ``AugmentOptions.vectors`` values that name a source rather than a file
VECTOR_SOURCES = ("teacher", "corpus")
#: the sidecar beside an output file: ``<output>`` + this suffix
SIDECAR_SUFFIX = ".augment.json"
_SIDECAR_FORMAT = 1
_SUFFIXES = (".jsonl", ".csv", ".tsv")
#: examples prepared together (their MLM rows share batches); results do not depend on it
_CHUNK = 64
_BRACKETED = re.compile(r"^(\[.*\]|<.*>)$")
_PRE_TOKENIZER = pre_tokenizers.BertPreTokenizer()


# ------------------------------------------------------------------------------------------------ options


@dataclass
class AugmentOptions:
    """How to augment.

    ``vectors``: ``"teacher"`` (the teacher's input embeddings), ``"corpus"`` (word2vec trained on the
    task texts; needs gensim) or the path of a word2vec/GloVe text file (write ``./teacher`` for a file
    of that name). ``device`` only places a teacher loaded from a folder (``None``: CUDA when present);
    a model passed in stays where it is. ``max_length`` bounds each MLM row, special tokens included: a
    longer sentence is seen through a window around the masked word.
    """

    p: float = 0.4
    top_k: int = 15
    copies: int = 20
    vectors: str = "teacher"
    seed: int = 0
    max_length: int = 128
    batch_size: int = 32
    device: str | None = None

    def __post_init__(self) -> None:
        self.validate()

    def validate(self, where: str = "") -> None:
        """Value checks, each error naming the field."""
        if isinstance(self.p, bool) or not isinstance(self.p, int | float) or not 0.0 <= self.p <= 1.0:
            raise ConfigError(f"{where}field 'p' must be a probability in [0, 1], got {self.p!r}")
        for name, least in (("top_k", 1), ("copies", 0), ("max_length", 3), ("batch_size", 1)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < least:
                raise ConfigError(f"{where}field '{name}' must be an integer >= {least}, got {value!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int):
            raise ConfigError(f"{where}field 'seed' must be an integer, got {self.seed!r}")
        if not isinstance(self.vectors, str | os.PathLike) or not str(self.vectors):
            raise ConfigError(f"{where}field 'vectors' must be 'teacher', 'corpus' or a file path, "
                              f"got {self.vectors!r}")

    def fingerprint(self) -> dict[str, Any]:
        """What decides the output (the device does not), with a vector file named by path, size and time:
        hashing a multi-GB GloVe file on every call would cost more than it protects."""
        data = asdict(self)
        data.pop("device")
        data["vectors"] = str(self.vectors)
        if data["vectors"] not in VECTOR_SOURCES:
            path = Path(self.vectors)
            with contextlib.suppress(OSError):
                stat = path.stat()
                data["vectors_file"] = {"path": str(path.resolve()), "size": stat.st_size,
                                        "mtime_ns": stat.st_mtime_ns}
        return data


# ------------------------------------------------------------------------------------------- word vectors


class WordVectors:
    """Words and their vectors, with cosine nearest neighbours (one matrix product per batch of queries)."""

    def __init__(self, words: Sequence[str], matrix: np.ndarray, source: str = "<vectors>") -> None:
        matrix = np.asarray(matrix, dtype=np.float32)
        if matrix.ndim != 2 or matrix.shape[0] != len(words):
            raise ValueError(f"{source}: {len(words)} words but a matrix of shape {matrix.shape}")
        self.words = list(words)
        self.matrix = matrix
        self.source = source
        self.index: dict[str, int] = {}
        for i, word in enumerate(self.words):
            self.index.setdefault(word, i)  # a repeated word keeps its first vector
        self._unit = torch.from_numpy(_unit_rows(matrix))

    def __len__(self) -> int:
        return len(self.words)

    @property
    def dim(self) -> int:
        return self.matrix.shape[1]

    def vector(self, word: str) -> np.ndarray | None:
        """The vector of `word` as written, else of its lower-case form; None when neither is known."""
        for form in (word, word.lower()):
            i = self.index.get(form)
            if i is not None:
                return self.matrix[i]
        return None

    def nearest(self, queries: np.ndarray, k: int, exclude: Sequence[set[str]] | None = None) -> list[list[str]]:
        """The `k` words most cosine-similar to each query row, best first, leaving out `exclude[i]`."""
        queries = np.atleast_2d(np.asarray(queries, dtype=np.float32))
        if queries.shape[1] != self.dim:
            raise ValueError(f"{self.source}: queries of dimension {queries.shape[1]}, vectors of {self.dim}")
        out: list[list[str]] = []
        step = 64  # bounds the score matrix (vocabulary x step) for large vector files
        for first in range(0, len(queries), step):
            q = torch.from_numpy(_unit_rows(queries[first:first + step]))
            scores = self._unit @ q.T  # (words, queries)
            for j in range(q.shape[0]):
                skip = exclude[first + j] if exclude is not None else set()
                want = min(len(self.words), k + len(skip))
                top = torch.topk(scores[:, j], want).indices.tolist()
                found = [self.words[i] for i in top if self.words[i] not in skip]
                out.append(found[:k])
        return out


def _unit_rows(matrix: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return (matrix / np.maximum(norms, 1e-12)).astype(np.float32)


def read_word_vectors(path: str | os.PathLike) -> WordVectors:
    """A word2vec or GloVe text file: one ``word v1 ... vD`` a line, optionally after a ``count dim`` header.

    The first line is a header when it holds exactly two integers. A word may hold spaces (GloVe 840B has
    some): the last D fields are the vector. A line of the wrong length, a value that is not a finite
    number or invalid UTF-8 is a DataError naming the file and line; blank lines are skipped.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such word-vector file")
    words: list[str] = []
    rows: list[np.ndarray] = []
    dim: int | None = None
    declared: int | None = None
    with open(path, "rb") as handle:
        for number, raw in enumerate(handle, 1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise DataError(f"{path}:{number}: not valid UTF-8 ({exc.reason})") from None
            fields = line.split()
            if not fields:
                continue
            if dim is None and not words and declared is None and len(fields) == 2 and all(
                    f.isdigit() for f in fields):
                declared, dim = int(fields[0]), int(fields[1])
                if dim < 1:
                    raise DataError(f"{path}:{number}: the header declares dimension {dim}")
                continue
            if dim is None:
                dim = len(fields) - 1
                if dim < 1:
                    raise DataError(f"{path}:{number}: expected a word and its vector, got only {fields[0]!r}")
            if len(fields) < dim + 1:
                raise DataError(f"{path}:{number}: expected a word and {dim} numbers, got {len(fields)} "
                                f"field(s)")
            values = fields[-dim:]
            try:
                vector = np.array([float(v) for v in values], dtype=np.float32)
            except ValueError:
                bad = next(v for v in values if not _is_float(v))
                raise DataError(f"{path}:{number}: value {bad!r} is not a number") from None
            if not np.isfinite(vector).all():
                raise DataError(f"{path}:{number}: the vector holds a value that is not finite")
            words.append(" ".join(fields[:-dim]))
            rows.append(vector)
    if not words:
        raise DataError(f"{path}: the file holds no word vectors")
    if declared is not None and declared != len(words):
        raise DataError(f"{path}:1: the header declares {declared} vectors but the file holds {len(words)}")
    return WordVectors(words, np.stack(rows), source=str(path))


def _is_float(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


# ------------------------------------------------------------------------------------------------- words


def _is_cjk(ch: str) -> bool:
    point = ord(ch)
    return any(lo <= point <= hi for lo, hi in CJK_RANGES)


def split_words(text: str) -> list[tuple[int, int]]:
    """The (start, end) character spans of the words of `text` as BERT's pre-tokenizer reads them: split at
    whitespace and punctuation, and each CJK ideograph a word of its own (BERT's normaliser spaces them)."""
    spans: list[tuple[int, int]] = []
    for _, (start, end) in _PRE_TOKENIZER.pre_tokenize_str(text):
        run = start
        for i in range(start, end):
            if _is_cjk(text[i]):
                if run < i:
                    spans.append((run, i))
                spans.append((i, i + 1))
                run = i + 1
        if run < end:
            spans.append((run, end))
    return spans


def _replaceable(word: str) -> bool:
    # Punctuation is structure, not content: the reference implementation keeps it too.
    return any(ch.isalnum() for ch in word)


def _match_case(original: str, replacement: str) -> str:
    """An uncased vocabulary's word in the original's case ("Paris" -> "London", "NASA" -> "ESA")."""
    if not replacement.islower():
        return replacement
    if len(original) > 1 and original.isupper():
        return replacement.upper()
    if original[:1].isupper():
        return replacement[:1].upper() + replacement[1:]
    return replacement


@dataclass
class _Sentence:
    """One text ready to augment: its word spans, which are replaceable and each one's candidates."""

    text: str
    spans: list[tuple[int, int]]
    pieces: list[list[int]]
    replaceable: list[bool]
    candidates: list[list[str]] = field(default_factory=list)

    def word(self, j: int) -> str:
        start, end = self.spans[j]
        return self.text[start:end]


# ----------------------------------------------------------------------------------------------- augmenter


class Augmenter:
    """Replaces words of texts as TinyBERT does, with a teacher MLM and a word-vector space.

    `teacher` is a masked-LM model (BertForMaskedLM or a family's MaskedLM class) or a model folder (also
    a registry alias such as "minilm"); `tokenizer` defaults to the folder's. `corpus` is the texts to
    train vectors on when ``options.vectors == "corpus"``.
    """

    def __init__(
        self,
        teacher: torch.nn.Module | str | os.PathLike,
        tokenizer: Any = None,
        options: AugmentOptions | None = None,
        corpus: Sequence[str] | None = None,
    ) -> None:
        self.options = options or AugmentOptions()
        self.options.validate()
        self.teacher = _load_teacher(teacher, self.options.device)
        if tokenizer is None:
            if not isinstance(teacher, str | os.PathLike):
                raise ConfigError("a tokenizer is needed when the teacher is given as a model, not a folder")
            from ...assets import model_path
            from ...tokenization import Tokenizer

            tokenizer = Tokenizer.from_pretrained(model_path(teacher))
        elif isinstance(tokenizer, str | os.PathLike):
            from ...tokenization import Tokenizer

            tokenizer = Tokenizer.from_pretrained(tokenizer)
        self.tokenizer = tokenizer
        self._corpus = corpus
        self._piece_cache: dict[str, list[int]] = {}
        self._vector_cache: dict[str, list[str]] = {}
        self._space: _VectorSpace | None = None
        self._id_to_token = _id_table(tokenizer)
        self._allowed = self._whole_word_ids()
        #: how many replaceable words the copies held and how many of them were replaced
        self.replaceable = 0
        self.replaced = 0
        vectors = str(self.options.vectors)
        if vectors == "corpus":
            _require_gensim()
            if corpus is None:
                raise ConfigError("vectors='corpus' trains word vectors on the task texts: pass corpus=...")
        elif vectors != "teacher" and not Path(vectors).is_file():
            raise ConfigError(f"vectors: no word-vector file at {vectors} (or use 'teacher' or 'corpus')")

    # ---------------------------------------------------------------------------------------- public

    def augment(
        self, texts: Sequence[str], pairs: Sequence[str | None] | None = None, first_index: int = 0
    ) -> list[list[tuple[str, str | None]]]:
        """For each text (and its pair), ``options.copies`` augmented (text, pair) copies.

        `first_index` is the index of ``texts[0]`` in the whole data set: it seeds each example's random
        stream, so augmenting a file in pieces gives what augmenting it at once gives.
        """
        if pairs is not None and len(pairs) != len(texts):
            raise ValueError(f"{len(texts)} texts but {len(pairs)} pairs")
        pair_list: Sequence[str | None] = pairs if pairs is not None else [None] * len(texts)
        firsts = [self._prepare(t) for t in texts]
        seconds = [None if p is None else self._prepare(p) for p in pair_list]
        sentences = firsts + [s for s in seconds if s is not None]
        self._fill_candidates(sentences)
        out = []
        for i, (first, second) in enumerate(zip(firsts, seconds, strict=True)):
            rng = random.Random(_example_seed(self.options.seed, first_index + i))
            copies = []
            for _ in range(self.options.copies):
                a = self._sample(first, rng)
                b = None if second is None else self._sample(second, rng)
                copies.append((a, b))
            out.append(copies)
        return out

    def fingerprint(self) -> str:
        """sha256 of the teacher's weights and the vocabulary: an output made with another teacher is stale."""
        digest = hashlib.sha256()
        digest.update(type(self.teacher).__name__.encode())
        vocab = sorted(self.tokenizer.vocab.items(), key=lambda item: item[1])
        digest.update(json.dumps(vocab, ensure_ascii=False).encode("utf-8"))
        for name, tensor in sorted(self.teacher.state_dict().items()):
            digest.update(name.encode())
            digest.update(str(tensor.dtype).encode())
            data = tensor.detach().cpu().contiguous()
            digest.update(data.reshape(-1).view(torch.uint8).numpy().tobytes())
        return digest.hexdigest()

    # ------------------------------------------------------------------------------------- preparing

    def _pieces(self, word: str) -> list[int]:
        ids = self._piece_cache.get(word)
        if ids is None:
            tokens = self.tokenizer.tokenize(word)
            ids = [int(i) for i in self.tokenizer.convert_tokens_to_ids(tokens)] if tokens else []
            self._piece_cache[word] = ids
        return ids

    def _prepare(self, text: str) -> _Sentence:
        if not isinstance(text, str):
            raise TypeError(f"texts must be strings, got {type(text).__name__}")
        spans = split_words(text)
        words = [text[s:e] for s, e in spans]
        pieces = [self._pieces(w) for w in words]
        replaceable = [bool(p) and _replaceable(w) for w, p in zip(words, pieces, strict=True)]
        return _Sentence(text, spans, pieces, replaceable)

    def _whole_word_ids(self) -> torch.Tensor:
        """Which ids may replace a word: whole words, not special, ``##`` or bracketed tokens, nor punctuation."""
        special = set(self.tokenizer.special_token_ids)
        allowed = torch.zeros(len(self._id_to_token), dtype=torch.bool)
        for i, token in enumerate(self._id_to_token):
            allowed[i] = (token is not None and i not in special and _whole_word(token))
        return allowed

    def _fill_candidates(self, sentences: list[_Sentence]) -> None:
        """Each replaceable word's candidates: MLM top-K for single pieces, vector neighbours for the rest."""
        queries: list[tuple[_Sentence, int]] = []
        multi: list[str] = []
        for sentence in sentences:
            sentence.candidates = [[] for _ in sentence.spans]
            for j, ok in enumerate(sentence.replaceable):
                if not ok:
                    continue
                if len(sentence.pieces[j]) == 1:
                    queries.append((sentence, j))
                elif sentence.word(j) not in self._vector_cache:
                    multi.append(sentence.word(j))
        self._mlm_candidates(queries)
        if multi:
            self._vector_candidates(list(dict.fromkeys(multi)))
        for sentence in sentences:
            for j, ok in enumerate(sentence.replaceable):
                if ok and len(sentence.pieces[j]) > 1:
                    sentence.candidates[j] = self._vector_cache[sentence.word(j)]

    # ------------------------------------------------------------------------------------------ MLM

    def _mlm_rows(self, sentence: _Sentence, j: int) -> tuple[list[int], int, int]:
        """The ids of one row with word `j` masked, the masked position and the original id there."""
        tok = self.tokenizer
        flat: list[int] = []
        position = 0
        for k, ids in enumerate(sentence.pieces):
            if k == j:
                position = len(flat)
            flat.extend(ids)
        room = self.options.max_length - 2
        start = 0
        if len(flat) > room:
            start = min(max(0, position - room // 2), len(flat) - room)
        window = flat[start:start + room]
        at = position - start
        original = window[at]
        window[at] = tok.mask_token_id
        return [tok.cls_token_id, *window, tok.sep_token_id], at + 1, original

    @torch.no_grad()
    def _mlm_candidates(self, queries: list[tuple[_Sentence, int]]) -> None:
        if not queries:
            return
        teacher = self.teacher
        device = next(teacher.parameters()).device
        was_training = teacher.training
        teacher.eval()
        try:
            size = self.options.batch_size
            for first in range(0, len(queries), size):
                batch = queries[first:first + size]
                rows = [self._mlm_rows(s, j) for s, j in batch]
                width = max(len(ids) for ids, _, _ in rows)
                input_ids = torch.full((len(rows), width), self.tokenizer.pad_token_id, dtype=torch.long)
                attention = torch.zeros((len(rows), width), dtype=torch.long)
                labels = torch.full((len(rows), width), -100, dtype=torch.long)
                for r, (ids, at, original) in enumerate(rows):
                    input_ids[r, :len(ids)] = torch.tensor(ids)
                    attention[r, :len(ids)] = 1
                    labels[r, at] = original
                # Labels make the head project only the masked positions: one row of logits per query.
                out = teacher(input_ids=input_ids.to(device), attention_mask=attention.to(device),
                              labels=labels.to(device))
                logits = out.logits.float().cpu()
                vocab = min(logits.shape[-1], len(self._allowed))
                scores = torch.full_like(logits, -math.inf)
                scores[:, :vocab] = logits[:, :vocab].masked_fill(~self._allowed[:vocab], -math.inf)
                for r, (_, _, original) in enumerate(rows):
                    scores[r, original] = -math.inf
                k = min(self.options.top_k, scores.shape[-1])
                values, indices = torch.topk(scores, k, dim=-1)
                for r, (sentence, j) in enumerate(batch):
                    sentence.candidates[j] = [self._id_to_token[int(i)] for v, i in
                                              zip(values[r].tolist(), indices[r].tolist(), strict=True)
                                              if v != -math.inf]
        finally:
            teacher.train(was_training)

    # -------------------------------------------------------------------------------------- vectors

    def _vector_candidates(self, words: list[str]) -> None:
        space = self._vector_space()
        known: list[str] = []
        queries: list[np.ndarray] = []
        for word in words:
            vector = space.query(word, self._pieces(word))
            if vector is None:
                self._vector_cache[word] = []  # not in the vector file: the word stays
            else:
                known.append(word)
                queries.append(vector)
        if not known:
            return
        exclude = [{w, w.lower(), _normalised(self.tokenizer, w)} for w in known]
        found = space.table.nearest(np.stack(queries), self.options.top_k, exclude)
        for word, neighbours in zip(known, found, strict=True):
            self._vector_cache[word] = neighbours

    def _vector_space(self) -> _VectorSpace:
        if self._space is None:
            vectors = str(self.options.vectors)
            if vectors == "teacher":
                self._space = _TeacherSpace(self.teacher, self._id_to_token, self._allowed)
            elif vectors == "corpus":
                self._space = _FileSpace(_train_corpus_vectors(self._corpus or [], self.options.seed))
            else:
                self._space = _FileSpace(read_word_vectors(vectors))
        return self._space

    # ------------------------------------------------------------------------------------- sampling

    def _sample(self, sentence: _Sentence, rng: random.Random) -> str:
        """One copy: each replaceable word replaced with probability p by a uniform pick of its candidates."""
        parts: list[str] = []
        last = 0
        for j, ok in enumerate(sentence.replaceable):
            if not ok:
                continue
            self.replaceable += 1
            draw = rng.random()
            candidates = sentence.candidates[j]
            if draw < self.options.p and candidates:
                choice = candidates[rng.randrange(len(candidates))]
                start, end = sentence.spans[j]
                parts.append(sentence.text[last:start])
                parts.append(_match_case(sentence.text[start:end], choice))
                last = end
                self.replaced += 1
        parts.append(sentence.text[last:])
        return "".join(parts)


class _VectorSpace:
    """Where a multi-piece word's vector comes from and whose words can replace it."""

    table: WordVectors

    def query(self, word: str, pieces: list[int]) -> np.ndarray | None:
        raise NotImplementedError


class _FileSpace(_VectorSpace):
    def __init__(self, table: WordVectors) -> None:
        self.table = table

    def query(self, word: str, pieces: list[int]) -> np.ndarray | None:
        return self.table.vector(word)


class _TeacherSpace(_VectorSpace):
    """The teacher's input embeddings: a word is the mean of its pieces; neighbours are whole-word entries."""

    def __init__(self, teacher: torch.nn.Module, id_to_token: list[str | None], allowed: torch.Tensor) -> None:
        weight = _input_embeddings(teacher).detach().float().cpu().numpy()
        self.embeddings = weight
        rows = [i for i in range(min(len(allowed), weight.shape[0])) if allowed[i]]
        self.table = WordVectors([str(id_to_token[i]) for i in rows], weight[rows], source="teacher embeddings")

    def query(self, word: str, pieces: list[int]) -> np.ndarray | None:
        inside = [i for i in pieces if i < self.embeddings.shape[0]]
        return self.embeddings[inside].mean(axis=0) if inside else None


def _input_embeddings(model: torch.nn.Module) -> torch.Tensor:
    for owner in (getattr(model, "bert", None), model):
        embeddings = getattr(owner, "embeddings", None)
        word = getattr(embeddings, "word", None)
        if isinstance(word, torch.nn.Embedding):
            return word.weight
    if hasattr(model, "get_input_embeddings"):
        return model.get_input_embeddings().weight
    raise BertologyError(f"cannot find the input embeddings of {type(model).__name__}; "
                         "use a word-vector file (vectors=PATH) instead of vectors='teacher'")


def _require_gensim() -> None:
    try:
        import gensim  # noqa: F401
    except ImportError:
        raise BertologyError("vectors='corpus' trains word2vec on the task texts with gensim, which is not "
                             "installed: pip install gensim (or use vectors='teacher' or a GloVe file)") from None


def _stable_hash(text: str) -> int:
    # gensim seeds each word's initial vector with `hashfxn(word + seed)`; Python's hash() changes per process.
    return int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:4], "little")


def _train_corpus_vectors(texts: Sequence[str], seed: int) -> WordVectors:
    """word2vec (gensim) on the task texts' words, lower-cased; one worker and a stable hash, so repeatable."""
    _require_gensim()
    from gensim.models import Word2Vec

    sentences = [[text[s:e].lower() for s, e in split_words(text)] for text in texts]
    sentences = [s for s in sentences if s]
    if not sentences:
        raise DataError("vectors='corpus': the task texts hold no words to train vectors on")
    model = Word2Vec(sentences=sentences, vector_size=100, window=5, min_count=1, workers=1, seed=seed,
                     epochs=10, hashfxn=_stable_hash)
    return WordVectors(list(model.wv.index_to_key), np.asarray(model.wv.vectors), source="task-corpus word2vec")


def _whole_word(token: str) -> bool:
    return not token.startswith("##") and not _BRACKETED.match(token) and any(ch.isalnum() for ch in token)


def _id_table(tokenizer: Any) -> list[str | None]:
    vocab = tokenizer.vocab
    table: list[str | None] = [None] * (max(vocab.values()) + 1 if vocab else 0)
    for token, i in vocab.items():
        table[i] = token
    return table


def _normalised(tokenizer: Any, word: str) -> str:
    normalizer = getattr(tokenizer.backend, "normalizer", None)
    return normalizer.normalize_str(word) if normalizer is not None else word


def _example_seed(seed: int, index: int) -> int:
    return int.from_bytes(hashlib.sha256(f"{seed}:{index}".encode()).digest()[:8], "little")


def _load_teacher(teacher: torch.nn.Module | str | os.PathLike, device: str | None) -> torch.nn.Module:
    """A masked-LM model as given, or loaded from a folder as its family's MaskedLM class."""
    if isinstance(teacher, torch.nn.Module):
        return teacher
    from ...assets import model_path
    from ...device import resolve_device
    from ...models.bert import BertForMaskedLM
    from ...models.family import family_for_config
    from ...models.pretrained import read_config

    folder = model_path(teacher)
    config = read_config(folder)
    family = family_for_config(config)
    cls = (family.masked_lm_class if family is not None else None) or BertForMaskedLM
    model = cls.from_pretrained(folder, config)
    return model.to(resolve_device(device or "auto")).eval()


# ------------------------------------------------------------------------------------------------- files


@dataclass
class AugmentResult:
    """What :func:`augment_file` did: ``reused`` when the output was already up to date."""

    output_path: Path
    reused: bool
    examples: int
    written: int
    replaceable: int
    replaced: int


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _numbered_lines(text: str) -> Iterator[tuple[int, str]]:
    lines = text.split("\n")
    while lines and not lines[-1].strip():
        lines.pop()
    for number, line in enumerate(lines, 1):
        yield number, line.rstrip("\r")


def _read_rows(path: Path) -> list[tuple[dict[str, Any], str]]:
    """Every row of a jsonl/csv/tsv task file as a dict, with its "file:line". Rows are kept whole, not
    read through a task kind, so labels (and any other field) are written back exactly as they were."""
    from ...finetuning.examples import read_text

    suffix = path.suffix.lower()
    if suffix not in _SUFFIXES:
        raise DataError(f"{path}: cannot augment a file with suffix {suffix or '(none)'!r}; "
                        f"expected one of {list(_SUFFIXES)}")
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    text = read_text(path)
    rows: list[tuple[dict[str, Any], str]] = []
    if suffix == ".jsonl":
        for number, line in _numbered_lines(text):
            where = f"{path}:{number}"
            if not line.strip():
                raise DataError(f"{where}: empty line")
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DataError(f"{where}: malformed JSON ({exc.msg} at column {exc.colno})") from None
            if not isinstance(row, dict):
                raise DataError(f"{where}: expected a JSON object, got a {type(row).__name__}")
            rows.append((row, where))
        return rows
    delimiter = "\t" if suffix == ".tsv" else ","
    quoting = csv.QUOTE_NONE if delimiter == "\t" else csv.QUOTE_MINIMAL
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, quoting=quoting)
    header: list[str] | None = None
    previous = 0
    try:
        for cells in reader:
            number, previous = previous + 1, reader.line_num
            if not any(cell.strip() for cell in cells):
                continue
            if header is None:
                header = [cell.strip() for cell in cells]
                continue
            if len(cells) != len(header):
                raise DataError(f"{path}:{number}: {len(cells)} field(s) but the header has {len(header)}")
            rows.append((dict(zip(header, cells, strict=True)), f"{path}:{number}"))
    except csv.Error as exc:
        raise DataError(f"{path}:{previous + 1}: cannot parse the row ({exc})") from None
    return rows


def _text_of(row: dict[str, Any], name: str, where: str, required: bool) -> str | None:
    value = row.get(name)
    if value is None or (isinstance(value, str) and not value.strip()):
        if required:
            raise DataError(f"{where}: no text in field '{name}' (fields: {sorted(row)})")
        return None
    if not isinstance(value, str):
        raise DataError(f"{where}: field '{name}' must be a string, got {type(value).__name__}")
    return value


def augment_file(
    input_path: str | os.PathLike,
    output_path: str | os.PathLike,
    teacher_folder_or_model: torch.nn.Module | str | os.PathLike,
    tokenizer: Any = None,
    options: AugmentOptions | None = None,
    text_field: str = "text",
    progress: bool = True,
    text_pair_field: str | None = "text_pair",
) -> AugmentResult:
    """Write each example of `input_path` followed by its augmented copies to `output_path` (jsonl).

    Both texts of a pair are augmented. The output is written atomically; a sidecar
    ``<output>.augment.json`` records the input's sha256, the options, the teacher's fingerprint and the
    output's sha256, and a later call with the same ones returns the file as it is (``reused=True``).
    """
    options = options or AugmentOptions()
    options.validate()
    source, target = Path(input_path), Path(output_path)
    if target.suffix.lower() != ".jsonl":
        raise ConfigError(f"{target}: the augmented file is written as JSON lines; name it *.jsonl")
    if target.exists() and source.exists() and target.resolve() == source.resolve():
        raise ConfigError(f"{target}: the output would overwrite the input")
    rows = _read_rows(source)
    texts: list[str] = []
    pairs: list[str | None] = []
    for row, where in rows:
        texts.append(str(_text_of(row, text_field, where, True)))
        pairs.append(_text_of(row, text_pair_field, where, False) if text_pair_field else None)
    augmenter = Augmenter(teacher_folder_or_model, tokenizer, options,
                          corpus=texts + [p for p in pairs if p] if str(options.vectors) == "corpus" else None)
    record = {
        "format": _SIDECAR_FORMAT,
        "input_sha256": _sha256_file(source),
        "options": options.fingerprint(),
        "teacher": augmenter.fingerprint(),
        "text_field": text_field,
        "text_pair_field": text_pair_field,
    }
    sidecar = target.with_name(target.name + SIDECAR_SUFFIX)
    previous = _read_sidecar(sidecar)
    if previous is not None and all(previous.get(k) == v for k, v in record.items()) and target.is_file() \
            and previous.get("output_sha256") == _sha256_file(target):
        return AugmentResult(target, True, int(previous.get("examples", len(rows))),
                             int(previous.get("written", 0)), int(previous.get("replaceable", 0)),
                             int(previous.get("replaced", 0)))

    written = 0
    with atomic_write(target) as handle, tqdm(total=len(rows), disable=not progress, desc="augment",
                                              unit="example") as bar:
        for first in range(0, len(rows), _CHUNK):
            chunk = rows[first:first + _CHUNK]
            copies = augmenter.augment(texts[first:first + _CHUNK],
                                       pairs[first:first + _CHUNK] if text_pair_field else None,
                                       first_index=first)
            for (row, _), versions in zip(chunk, copies, strict=True):
                handle.write(json.dumps(row, ensure_ascii=False) + "\n")
                for text, pair in versions:
                    new = dict(row)
                    new[text_field] = text
                    if pair is not None and text_pair_field:
                        new[text_pair_field] = pair
                    handle.write(json.dumps(new, ensure_ascii=False) + "\n")
                written += 1 + len(versions)
            bar.update(len(chunk))
    record.update(output_sha256=_sha256_file(target), examples=len(rows), written=written,
                  replaceable=augmenter.replaceable, replaced=augmenter.replaced)
    with atomic_write(sidecar) as handle:
        json.dump(record, handle, indent=2)
        handle.write("\n")
    return AugmentResult(target, False, len(rows), written, augmenter.replaceable, augmenter.replaced)


def _read_sidecar(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None
