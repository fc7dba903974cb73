"""The on-disk format of a prepared corpus, its streaming writer and its memory-mapped reader.

A corpus folder holds ``meta.json`` and shards ``shard-00000/`` ... Each shard has flat arrays:

- ``tokens.bin``: token ids (uint16 when the vocabulary has fewer than 65,536 entries, else uint32),
  no special tokens;
- ``word_starts.bin``: uint8 per token, 1 where the token starts a whole word;
- ``sentences.bin``: int64 token offsets of each sentence start within the shard, plus the end;
- ``documents.bin``: int64 sentence offsets (shard-local) of each document start, plus the end;
- ``case.bin`` (optional): uint8 per token, the case of the token's original text (see :data:`CASE_NAMES`).

A document never spans shards. Shards are written under a temporary name and renamed when complete, and
``meta.json`` is written last and atomically, so a folder without it is known to be unfinished.

Each shard's entry in ``meta.json`` carries ``checksums``: ``"sha256:<hex>"`` of each of its files, computed
from the bytes as they are written (no second read). :class:`TokenCorpus` checks them before the first token
is read, so a flipped byte fails with the file's name before training rather than silently feeding wrong
tokens. SHA-256 rather than BLAKE2b: on CPUs with SHA instructions (current x86 and ARM) hashlib's SHA-256
runs about twice as fast (measured 810 vs 415 MB/s here), and `sha256sum` can check a file by hand.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import BertologyError
from ..utils.io import atomic_write, fsync_dir

__all__ = [
    "CASE_NAMES",
    "FORMAT_VERSION",
    "META_FILE",
    "CorpusError",
    "ShardWriter",
    "TokenCorpus",
    "token_dtype",
    "tokenizer_description",
    "vocab_sha256",
]

FORMAT_VERSION = 1
META_FILE = "meta.json"
SHARD_PREFIX = "shard-"
#: The values of case.bin.
CASE_NAMES = ("none", "lower", "title", "upper", "mixed")
_FILES = ("tokens.bin", "word_starts.bin", "sentences.bin", "documents.bin", "case.bin", "pinyin.bin")
#: pinyin ids per token (ChineseBERT): letters then tone, padded with zeros
PINYIN_WIDTH = 8
#: the hash of every shard file recorded in meta.json (the prefix of each recorded value)
CHECKSUM_ALGORITHM = "sha256"
_HASH_CHUNK = 1 << 22

_log = logging.getLogger(__name__)
#: corpus folders already warned about for lacking checksums (one warning a folder a process)
_WARNED_UNCHECKED: set[str] = set()


def _new_hash() -> Any:
    return hashlib.sha256()


def file_checksum(path: str | os.PathLike) -> str:
    """``"sha256:<hex>"`` of a file's bytes, read in 4 MiB chunks (memory stays flat for any shard size)."""
    with open(path, "rb") as handle:
        digest = hashlib.file_digest(handle, _new_hash)
    return f"{CHECKSUM_ALGORITHM}:{digest.hexdigest()}"


class _HashingFile:
    """A binary file opened for writing that hashes what goes through it, so the checksum costs no re-read."""

    def __init__(self, path: Path) -> None:
        self.handle = open(path, "wb")  # noqa: SIM115 - closed by ShardWriter._finish / abort
        self.digest = _new_hash()

    def write(self, data: bytes) -> int:
        self.digest.update(data)
        return self.handle.write(data)

    def checksum(self) -> str:
        return f"{CHECKSUM_ALGORITHM}:{self.digest.hexdigest()}"

    def flush(self) -> None:
        self.handle.flush()

    def fileno(self) -> int:
        return self.handle.fileno()

    def close(self) -> None:
        self.handle.close()


class CorpusError(BertologyError, ValueError):
    """A prepared corpus folder is unfinished, truncated or inconsistent with its meta.json."""


def token_dtype(vocab_size: int) -> np.dtype:
    """uint16 when every id fits (halves the disk and page-cache footprint), else uint32."""
    return np.dtype(np.uint16) if vocab_size < 65536 else np.dtype(np.uint32)


def vocab_sha256(tokenizer: Any) -> str:
    """A fingerprint of the vocabulary (tokens in id order), so a corpus can be matched to its tokenizer."""
    vocab = tokenizer.vocab
    digest = hashlib.sha256()
    for token, _ in sorted(vocab.items(), key=lambda item: item[1]):
        digest.update(token.encode("utf-8", "surrogatepass"))
        digest.update(b"\n")
    return digest.hexdigest()


def tokenizer_description(tokenizer: Any) -> dict[str, Any]:
    """What meta.json records about the tokenizer: enough to refuse a mismatched one later."""
    return {
        "class": type(tokenizer).__name__,
        "vocab_size": int(tokenizer.vocab_size),
        "vocab_sha256": vocab_sha256(tokenizer),
        "do_lower_case": getattr(tokenizer, "do_lower_case", None),
        "strip_accents": getattr(tokenizer, "strip_accents", None),
        "tokenize_chinese_chars": getattr(tokenizer, "tokenize_chinese_chars", None),
        "special_tokens": {
            name: getattr(tokenizer, f"{name}_token_id", None) for name in ("pad", "unk", "cls", "sep", "mask")
        },
    }


class ShardWriter:
    """Appends documents to shard files as they come, starting a new shard past `shard_tokens`.

    Memory holds only the open files and a few counters; offsets are written as sentences arrive.
    """

    def __init__(self, folder: str | os.PathLike, dtype: np.dtype, record_case: bool, shard_tokens: int,
                 record_pinyin: bool = False) -> None:
        if shard_tokens < 1:
            raise ValueError(f"shard_tokens must be positive, got {shard_tokens}")
        self.folder = Path(folder)
        self.dtype = np.dtype(dtype)
        self.record_case = record_case
        self.record_pinyin = record_pinyin
        self.shard_tokens = shard_tokens
        self.shards: list[dict[str, Any]] = []
        self._open: dict[str, Any] | None = None

    # One shard's running state: the files and its local counts.
    def _start(self) -> None:
        name = f"{SHARD_PREFIX}{len(self.shards):05d}"
        tmp = self.folder / f".{name}.tmp"
        if tmp.exists():
            shutil.rmtree(tmp)
        tmp.mkdir(parents=True)
        names = list(_FILES[:4]) + (["case.bin"] if self.record_case else []) + \
            (["pinyin.bin"] if self.record_pinyin else [])
        self._open = {
            "name": name,
            "tmp": tmp,
            "files": {n: _HashingFile(tmp / n) for n in names},
            "tokens": 0,
            "sentences": 0,
            "documents": 0,
        }

    def add(
        self,
        tokens: np.ndarray,
        word_starts: np.ndarray,
        case: np.ndarray | None,
        sentence_lengths: np.ndarray,
        document_sentences: np.ndarray,
        pinyin: np.ndarray | None = None,
    ) -> None:
        """Append whole documents: `document_sentences[i]` sentences each, `sentence_lengths` tokens each."""
        if len(document_sentences) == 0:
            return
        sent_end = np.cumsum(sentence_lengths, dtype=np.int64)
        doc_sent_end = np.cumsum(document_sentences, dtype=np.int64)
        doc_tok_end = sent_end[doc_sent_end - 1]
        d0 = 0
        n_docs = len(document_sentences)
        while d0 < n_docs:
            if self._open is None:
                self._start()
            shard = self._open
            s0 = int(doc_sent_end[d0 - 1]) if d0 else 0
            t0 = int(doc_tok_end[d0 - 1]) if d0 else 0
            room = self.shard_tokens - shard["tokens"]
            # Take documents while the shard is under its budget; the one that crosses it still goes in.
            d1 = int(np.searchsorted(doc_tok_end, t0 + room, side="left")) + 1
            d1 = min(max(d1, d0 + 1), n_docs)
            s1 = int(doc_sent_end[d1 - 1])
            t1 = int(doc_tok_end[d1 - 1])
            files = shard["files"]
            files["tokens.bin"].write(np.ascontiguousarray(tokens[t0:t1], dtype=self.dtype).tobytes())
            files["word_starts.bin"].write(np.ascontiguousarray(word_starts[t0:t1], dtype=np.uint8).tobytes())
            if self.record_case:
                files["case.bin"].write(np.ascontiguousarray(case[t0:t1], dtype=np.uint8).tobytes())
            if self.record_pinyin:
                files["pinyin.bin"].write(np.ascontiguousarray(pinyin[t0:t1], dtype=np.uint8).tobytes())
            starts = np.empty(s1 - s0, dtype=np.int64)
            starts[0] = 0
            starts[1:] = sent_end[s0:s1 - 1] - t0
            files["sentences.bin"].write((starts + shard["tokens"]).tobytes())
            doc_starts = np.empty(d1 - d0, dtype=np.int64)
            doc_starts[0] = 0
            doc_starts[1:] = doc_sent_end[d0:d1 - 1] - s0
            files["documents.bin"].write((doc_starts + shard["sentences"]).tobytes())
            shard["tokens"] += t1 - t0
            shard["sentences"] += s1 - s0
            shard["documents"] += d1 - d0
            d0 = d1
            if shard["tokens"] >= self.shard_tokens:
                self._finish()

    def _finish(self) -> None:
        shard = self._open
        if shard is None:
            return
        files = shard["files"]
        files["sentences.bin"].write(np.array([shard["tokens"]], dtype=np.int64).tobytes())
        files["documents.bin"].write(np.array([shard["sentences"]], dtype=np.int64).tobytes())
        for handle in files.values():
            handle.flush()
            os.fsync(handle.fileno())
            handle.close()
        final = self.folder / shard["name"]
        if final.exists():
            shutil.rmtree(final)
        os.replace(shard["tmp"], final)
        self.shards.append(
            {"name": shard["name"], "documents": shard["documents"], "sentences": shard["sentences"],
             "tokens": shard["tokens"], "checksums": {n: f.checksum() for n, f in files.items()}}
        )
        self._open = None

    def close(self) -> list[dict[str, Any]]:
        """Finish the open shard and return the list of shards for meta.json."""
        self._finish()
        fsync_dir(self.folder)
        return self.shards

    def abort(self) -> None:
        """Close and delete an unfinished shard (after an error), leaving no half-written files."""
        shard, self._open = self._open, None
        if shard is not None:
            for handle in shard["files"].values():
                handle.close()
            shutil.rmtree(shard["tmp"], ignore_errors=True)


def write_meta(folder: str | os.PathLike, meta: dict[str, Any]) -> None:
    """meta.json last and atomically: its presence marks the corpus complete."""
    with atomic_write(Path(folder) / META_FILE) as handle:
        json.dump(meta, handle, indent=2, ensure_ascii=False, sort_keys=False)
        handle.write("\n")


class _Shard:
    def __init__(self, folder: Path, info: dict[str, Any], dtype: np.dtype, has_case: bool,
                 has_pinyin: bool = False) -> None:
        self.path = folder / str(info["name"])
        checksums = info.get("checksums")
        if checksums is not None and not (isinstance(checksums, dict)
                                          and all(isinstance(v, str) for v in checksums.values())):
            raise CorpusError(f"{folder / META_FILE}: shard {self.path.name}: 'checksums' must map file names to "
                              f"'{CHECKSUM_ALGORITHM}:<hex>' strings, got {checksums!r:.80}")
        self.checksums: dict[str, str] | None = checksums
        self.num_tokens = int(info["tokens"])
        self.num_sentences = int(info["sentences"])
        self.num_documents = int(info["documents"])
        if not self.path.is_dir():
            raise CorpusError(f"{folder}: shard {self.path.name} listed in {META_FILE} is missing")
        self.tokens = self._map("tokens.bin", dtype, self.num_tokens)
        self.word_starts = self._map("word_starts.bin", np.dtype(np.uint8), self.num_tokens)
        self.case = self._map("case.bin", np.dtype(np.uint8), self.num_tokens) if has_case else None
        self.pinyin = None
        if has_pinyin:
            flat = self._map("pinyin.bin", np.dtype(np.uint8), self.num_tokens * PINYIN_WIDTH)
            self.pinyin = flat.reshape(self.num_tokens, PINYIN_WIDTH)
        self.sentences = self._map("sentences.bin", np.dtype(np.int64), self.num_sentences + 1)
        self.documents = self._map("documents.bin", np.dtype(np.int64), self.num_documents + 1)
        if int(self.sentences[0]) != 0 or int(self.sentences[-1]) != self.num_tokens:
            raise CorpusError(f"{self.path / 'sentences.bin'}: offsets do not run from 0 to {self.num_tokens}")
        if int(self.documents[0]) != 0 or int(self.documents[-1]) != self.num_sentences:
            raise CorpusError(f"{self.path / 'documents.bin'}: offsets do not run from 0 to {self.num_sentences}")

    def verify(self) -> None:
        """Hash each file and compare with meta.json; CorpusError naming the first file that differs."""
        for name, expected in (self.checksums or {}).items():
            path = self.path / name
            algorithm = expected.partition(":")[0]
            if algorithm != CHECKSUM_ALGORITHM:
                raise CorpusError(f"{path}: {META_FILE} records a {algorithm!r} checksum; this bertology checks "
                                  f"{CHECKSUM_ALGORITHM!r} ones")
            if not path.is_file():
                raise CorpusError(f"{path} is missing (listed with a checksum in {META_FILE})")
            actual = file_checksum(path)
            if actual != expected:
                raise CorpusError(
                    f"{path}: checksum mismatch ({META_FILE} records {expected[:24]}..., the file hashes to "
                    f"{actual[:24]}...): the file was changed or damaged after preparation (a flipped byte, a "
                    "partial copy); prepare the corpus again or restore the file"
                )

    def _map(self, name: str, dtype: np.dtype, count: int) -> np.ndarray:
        path = self.path / name
        if not path.is_file():
            raise CorpusError(f"{path} is missing")
        expected = count * dtype.itemsize
        size = path.stat().st_size
        if size != expected:
            raise CorpusError(
                f"{path} holds {size} bytes but {META_FILE} promises {count} x {dtype.name} = {expected}; "
                "the file is truncated or corrupt: prepare the corpus again"
            )
        if count == 0:
            return np.zeros(0, dtype=dtype)
        return np.memmap(path, dtype=dtype, mode="r", shape=(count,))


class TokenCorpus:
    """A prepared corpus, memory-mapped read-only; sentence and document indices are global.

    Opening checks every file's size against meta.json, so an unfinished or truncated folder fails here
    with its name rather than later with nonsense tokens. The shards' checksums are checked lazily, once,
    before the first token or offset is read (so `corpus info`-style metadata reads stay instant, and
    training fails before its first batch); `verify=False` skips that, `verify()` runs it at once.
    """

    def __init__(self, folder: str | os.PathLike, verify: bool = True) -> None:
        self.folder = Path(folder)
        self._verified = not verify
        meta_path = self.folder / META_FILE
        if not self.folder.is_dir():
            raise CorpusError(f"{self.folder} is not a prepared corpus folder (it does not exist)")
        if not meta_path.is_file():
            raise CorpusError(
                f"{self.folder} has no {META_FILE}: the corpus is unfinished (preparation was interrupted) "
                "or this is not a prepared corpus; run `bertology corpus prepare` again"
            )
        try:
            with open(meta_path, encoding="utf-8") as handle:
                self._meta = json.load(handle)
            version = self._meta["format_version"]
            dtype = np.dtype(self._meta["token_dtype"])
            has_case = bool(self._meta["record_case"])
            has_pinyin = bool(self._meta.get("record_pinyin", False))
            shard_infos = self._meta["shards"]
        except (ValueError, KeyError, TypeError) as exc:
            raise CorpusError(f"{meta_path} is corrupt or not a corpus meta file: {exc}") from None
        if version != FORMAT_VERSION:
            raise CorpusError(f"{meta_path}: format version {version}; this bertology reads {FORMAT_VERSION}")
        self._shards = [_Shard(self.folder, info, dtype, has_case, has_pinyin) for info in shard_infos]
        self._has_case = has_case
        self._has_pinyin = has_pinyin
        self._sent_base = np.cumsum([0] + [s.num_sentences for s in self._shards], dtype=np.int64)
        self._doc_base = np.cumsum([0] + [s.num_documents for s in self._shards], dtype=np.int64)
        self._tok_total = int(sum(s.num_tokens for s in self._shards))
        counts = self._meta.get("counts", {})
        for key, value in (("documents", self.num_documents), ("sentences", self.num_sentences),
                           ("tokens", self.num_tokens)):
            if key in counts and int(counts[key]) != value:
                raise CorpusError(f"{meta_path}: counts say {counts[key]} {key} but the shards hold {value}")

    # ------------------------------------------------------------------------------------------ checks

    @property
    def has_checksums(self) -> bool:
        """Whether meta.json records a checksum of every shard file (corpora prepared before it do not)."""
        return all(s.checksums for s in self._shards)

    def verify(self) -> None:
        """Hash every shard file and compare with meta.json now; CorpusError names the first bad file.

        A corpus prepared before checksums were recorded cannot be checked: it opens with one warning.
        """
        if not self.has_checksums:
            key = str(self.folder.resolve())
            if key not in _WARNED_UNCHECKED:
                _WARNED_UNCHECKED.add(key)
                _log.warning("%s: %s records no shard checksums (prepared by an older bertology); corrupt shards "
                             "cannot be detected; prepare the corpus again to add them", self.folder, META_FILE)
        for shard in self._shards:
            shard.verify()
        self._verified = True

    def _check(self) -> None:
        if not self._verified:
            self.verify()

    # ------------------------------------------------------------------------------------------- sizes

    @property
    def meta(self) -> dict[str, Any]:
        return self._meta

    @property
    def num_documents(self) -> int:
        return int(self._doc_base[-1])

    @property
    def num_sentences(self) -> int:
        return int(self._sent_base[-1])

    @property
    def num_tokens(self) -> int:
        return self._tok_total

    @property
    def vocab_size(self) -> int:
        return int(self._meta["tokenizer"]["vocab_size"])

    @property
    def has_case(self) -> bool:
        return self._has_case

    def __len__(self) -> int:
        return self.num_documents

    def __repr__(self) -> str:
        return (f"TokenCorpus({str(self.folder)!r}, documents={self.num_documents}, "
                f"sentences={self.num_sentences}, tokens={self.num_tokens})")

    # ------------------------------------------------------------------------------------------ lookup

    def token_counts(self, vocab_size: int | None = None) -> torch.Tensor:
        """How often each token id occurs in the corpus (vocabulary pruning keeps the ones that do)."""
        self._check()
        size = vocab_size or self.vocab_size
        counts = np.zeros(size, dtype=np.int64)
        for shard in self._shards:
            if shard.num_tokens:
                counts += np.bincount(np.asarray(shard.tokens, dtype=np.int64), minlength=size)[:size]
        return torch.from_numpy(counts)

    def _sentence_slot(self, s: int) -> tuple[_Shard, int, int]:
        self._check()
        s = int(s)
        if not 0 <= s < self.num_sentences:
            raise IndexError(f"sentence {s} out of range (the corpus has {self.num_sentences})")
        k = int(np.searchsorted(self._sent_base, s, side="right")) - 1
        shard = self._shards[k]
        local = s - int(self._sent_base[k])
        return shard, int(shard.sentences[local]), int(shard.sentences[local + 1])

    def document_sentences(self, d: int) -> range:
        """Global sentence indices of document `d`."""
        self._check()
        d = int(d)
        if not 0 <= d < self.num_documents:
            raise IndexError(f"document {d} out of range (the corpus has {self.num_documents})")
        k = int(np.searchsorted(self._doc_base, d, side="right")) - 1
        shard = self._shards[k]
        local = d - int(self._doc_base[k])
        base = int(self._sent_base[k])
        return range(base + int(shard.documents[local]), base + int(shard.documents[local + 1]))

    def document_of_sentence(self, s: int) -> int:
        """The document that holds global sentence `s`."""
        self._check()
        s = int(s)
        if not 0 <= s < self.num_sentences:
            raise IndexError(f"sentence {s} out of range (the corpus has {self.num_sentences})")
        k = int(np.searchsorted(self._sent_base, s, side="right")) - 1
        local = s - int(self._sent_base[k])
        return int(self._doc_base[k]) + int(np.searchsorted(self._shards[k].documents, local, side="right")) - 1

    def sentence(self, s: int) -> np.ndarray:
        """Token ids of sentence `s` as int64 (a copy: safe to modify)."""
        shard, a, b = self._sentence_slot(s)
        return shard.tokens[a:b].astype(np.int64)

    def word_starts(self, s: int) -> np.ndarray:
        """Whether each token of sentence `s` starts a whole word (for whole-word masking)."""
        shard, a, b = self._sentence_slot(s)
        return np.asarray(shard.word_starts[a:b]).astype(bool)

    def case(self, s: int) -> np.ndarray | None:
        """The case class of each token of sentence `s` (see CASE_NAMES), or None if not recorded."""
        if not self._has_case:
            return None
        shard, a, b = self._sentence_slot(s)
        return np.array(shard.case[a:b], dtype=np.uint8)

    @property
    def has_pinyin(self) -> bool:
        return self._has_pinyin

    def pinyin(self, s: int) -> np.ndarray | None:
        """(tokens, 8) pinyin ids of sentence `s` (zeros for non-Chinese tokens), or None if not recorded."""
        if not self._has_pinyin:
            return None
        shard, a, b = self._sentence_slot(s)
        return np.array(shard.pinyin[a:b], dtype=np.int64)

    def sentence_lengths(self) -> np.ndarray:
        """Token count of every sentence, in global order (from the offsets; no token is read)."""
        self._check()
        if not self._shards:
            return np.zeros(0, dtype=np.int64)
        return np.concatenate([np.diff(np.asarray(s.sentences)) for s in self._shards]).astype(np.int64)

    def document_lengths(self) -> np.ndarray:
        """Sentence count of every document, in global order."""
        self._check()
        if not self._shards:
            return np.zeros(0, dtype=np.int64)
        return np.concatenate([np.diff(np.asarray(s.documents)) for s in self._shards]).astype(np.int64)
