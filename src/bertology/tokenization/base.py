"""What every tokenizer here shares, whatever its model (WordPiece, byte-level BPE).

The subclasses only decide how a backend is built, trained, loaded and described in
tokenizer_config.json; batching, truncation, padding, tensors, id conversions and the atomic save of
tokenizer.json live here once, so that a fix to one (say, pair truncation) reaches both.
"""

from __future__ import annotations

import json
import os
import threading
import warnings
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, ClassVar

import tokenizers
from tokenizers import AddedToken

from bertology.utils.io import atomic_write

__all__ = ["BaseTokenizer", "BatchEncoding"]

TOKENIZER_FILE = "tokenizer.json"
CONFIG_FILE = "tokenizer_config.json"
SPECIAL_TOKENS_MAP_FILE = "special_tokens_map.json"
# transformers writes this sentinel when a tokenizer has no length limit of its own.
NO_LIMIT = int(1e20)


class BatchEncoding(dict):
    """The encoded batch: a plain dict (so `model(**batch)` works) that also allows `batch.input_ids`."""

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None

    def to(self, device: Any) -> BatchEncoding:
        """Move every tensor to `device` (lists such as `word_ids` are left as they are)."""
        return BatchEncoding({k: v.to(device) if hasattr(v, "to") else v for k, v in self.items()})


class BaseTokenizer:
    """A `tokenizers.Tokenizer` wrapped in a small, stable, transformers-compatible API.

    Subclasses set `ROLES` (the special-token roles the model needs, e.g. pad/unk/cls/sep/mask),
    `SPECIAL_TOKEN_DEFAULTS` (role -> default token) and implement the file-format hooks. Encoding
    calls configure truncation on the shared Rust backend, so they hold a lock to stay correct when
    several threads (e.g. a server) share one tokenizer.
    """

    ROLES: ClassVar[tuple[str, ...]] = ()
    SPECIAL_TOKEN_DEFAULTS: ClassVar[dict[str, str]] = {}

    def __init__(
        self,
        backend: tokenizers.Tokenizer,
        *,
        model_max_length: int,
        special_tokens: dict[str, str] | None,
        source: str,
    ) -> None:
        self._backend = backend
        self._lock = threading.RLock()
        tokens = dict(self.SPECIAL_TOKEN_DEFAULTS)
        tokens.update({k: v for k, v in (special_tokens or {}).items() if v is not None})
        unknown = set(tokens) - set(self.ROLES)
        if unknown:
            raise ValueError(f"unknown special token roles {sorted(unknown)}; expected {list(self.ROLES)}")
        if model_max_length < 2:
            raise ValueError(
                f"model_max_length must be at least 2 ({tokens['cls']} and {tokens['sep']}), got {model_max_length}"
            )
        self._model_max_length = int(model_max_length)
        self._special_tokens = tokens
        self._extra_special: list[str] = []
        self._special_ids: dict[str, int] = {}
        for role in self.ROLES:
            token_id = backend.token_to_id(tokens[role])
            if token_id is None:
                raise ValueError(f"{source}: the vocabulary lacks the {role} token {tokens[role]!r}")
            self._special_ids[role] = token_id
        # Padding and truncation are decided per call; a tokenizer.json may carry stale settings.
        backend.no_padding()
        backend.no_truncation()
        # Special tokens stay atomic in raw text too ("<mask>" is one token), as in transformers.
        seen: set[str] = set()
        added = []
        for role in self.ROLES:
            if tokens[role] not in seen:
                seen.add(tokens[role])
                added.append(self._special_added_token(role, tokens[role]))
        backend.add_special_tokens(added)

    @classmethod
    def from_pretrained(cls, path: str | os.PathLike) -> BaseTokenizer:
        """Load a saved tokenizer from a folder or one of its files; each subclass reads its own format.

        `bertology.Tokenizer.from_pretrained` picks the subclass for a folder.
        """
        raise NotImplementedError

    def _special_added_token(self, role: str, token: str) -> AddedToken:
        """How the special token of `role` matches raw text (RoBERTa's <mask> also eats a space before it)."""
        return AddedToken(token, special=True, normalized=False)

    def _add_extra_special(self, tokens: Iterable[str]) -> None:
        # Extra special tokens (beyond the named roles) stay atomic and are skipped by decode.
        for token in tokens:
            if token not in self._extra_special:
                self._backend.add_special_tokens([AddedToken(token, special=True, normalized=False)])
                self._extra_special.append(token)

    def _layout(self, pair: bool) -> str:
        """The special-token frame of an input, for error messages."""
        cls, sep = self.cls_token, self.sep_token
        return f"{cls} ... {sep} ... {sep}" if pair else f"{cls} ... {sep}"

    # ---------------------------------------------------------------------------------------- encoding

    def __call__(
        self,
        texts: str | Sequence[str],
        text_pairs: str | Sequence[str] | None = None,
        max_length: int | None = None,
        truncation: bool = True,
        padding: bool | str = True,
        return_tensors: str | None = "pt",
        return_offsets_mapping: bool = False,
        return_word_ids: bool = False,
        return_special_tokens_mask: bool = False,
    ) -> BatchEncoding:
        """Encode a text or a batch (optionally of pairs) into model inputs.

        Always batched: a single string gives a batch of one. `max_length` defaults to
        `model_max_length` (512 for BERT) so a tokenizer with shorter positions never warns on
        defaults; a larger value is clamped with a warning. `padding` is True/"longest",
        "max_length" or False/"do_not_pad". `word_ids` stays a list of lists because special and pad
        positions are None, which no tensor can hold. truncation=False is for callers that bound
        lengths themselves: nothing then stops a sequence from outgrowing the model's positions.
        """
        batch = _as_batch(texts, "texts")
        pairs = None
        if text_pairs is not None:
            pairs = _as_batch(text_pairs, "text_pairs")
            if len(pairs) != len(batch):
                raise ValueError(f"got {len(batch)} texts but {len(pairs)} text_pairs; they must pair up")
        if return_tensors not in (None, "pt"):
            raise ValueError(f"return_tensors must be 'pt' or None, got {return_tensors!r}")
        pad_mode = _padding_mode(padding)
        max_length = self._check_max_length(max_length, pair=pairs is not None)
        encodings = self._encode(batch, pairs, max_length, truncation)
        if pad_mode != "none":
            target = max_length if pad_mode == "max_length" else max(len(e) for e in encodings)
            for e in encodings:
                e.pad(
                    target,
                    direction="right",
                    pad_id=self.pad_token_id,
                    pad_type_id=0,
                    pad_token=self.pad_token,
                )

        out = BatchEncoding(
            input_ids=[e.ids for e in encodings],
            token_type_ids=[e.type_ids for e in encodings],
            attention_mask=[e.attention_mask for e in encodings],
        )
        out.update(self._extra_inputs(encodings, batch, pairs))
        if return_special_tokens_mask:
            out["special_tokens_mask"] = [e.special_tokens_mask for e in encodings]
        if return_offsets_mapping:
            out["offset_mapping"] = [e.offsets for e in encodings]
        if return_tensors == "pt":
            lengths = {len(ids) for ids in out["input_ids"]}
            if len(lengths) > 1:
                raise ValueError(
                    f"return_tensors='pt' needs sequences of one length, got lengths {sorted(lengths)} "
                    f"(padding={padding!r}, truncation={truncation}); pass padding=True or return_tensors=None"
                )
            import torch

            for key in list(out):
                out[key] = torch.tensor(out[key], dtype=torch.long)
        if return_word_ids:
            out["word_ids"] = [e.word_ids for e in encodings]
        return out

    def _encode(self, batch: list[str], pairs: list[str] | None, max_length: int, truncation: bool) -> list[Any]:
        """The backend's encodings of a checked batch, with special tokens, truncated but not padded."""
        with self._lock:
            try:
                if pairs is not None and truncation:
                    return self._encode_pairs_truncated(batch, pairs, max_length)
                if truncation:
                    self._backend.enable_truncation(max_length, strategy="longest_first", direction="right")
                inputs: list[Any] = batch if pairs is None else list(zip(batch, pairs, strict=True))
                return self._backend.encode_batch(inputs, add_special_tokens=True)
            finally:
                self._backend.no_truncation()

    def _extra_inputs(
        self, encodings: list[Any], texts: list[str], pairs: list[str] | None
    ) -> dict[str, list[Any]]:
        """Per-token model inputs beyond ids, segments and mask (ChineseBERT's pinyin), one list a text.

        Called on the final encodings (truncated and padded), so whatever a subclass adds is aligned
        with `input_ids` by construction; the base tokenizer adds nothing.
        """
        return {}

    def _encode_pairs_truncated(self, firsts: list[str], seconds: list[str], max_length: int) -> list[Any]:
        """Pairs truncated longest-first, exactly as tokenizers does, without its quadratic cost.

        tokenizers keeps every combination of the two sides' overflow windows, so two long documents
        cost (n1/max_length) * (n2/max_length) encodings. Longest-first only looks at each side's
        length relative to the budget and to the other side, so capping each side just past the budget
        (keeping which one is longer) first gives the same result for a linear cost.
        """
        backend = self._backend
        backend.no_truncation()
        # The sides are encoded without the post-processor: it runs even without special tokens, and
        # RoBERTa's trims offsets, which is not idempotent (a second pass would cut one more character).
        processor = backend.post_processor
        backend.post_processor = None
        try:
            a_side = backend.encode_batch(firsts, add_special_tokens=False)
            b_side = backend.encode_batch(seconds, add_special_tokens=False)
        finally:
            backend.post_processor = processor
        budget = max_length - backend.num_special_tokens_to_add(is_pair=True)
        for a, b in zip(a_side, b_side, strict=True):
            n1, n2 = len(a), len(b)
            a.truncate(min(n1, budget + 1 + (n1 > n2)))
            b.truncate(min(n2, budget + 1 + (n2 > n1)))
        backend.enable_truncation(max_length, strategy="longest_first", direction="right")
        return [
            backend.post_process(a, b, add_special_tokens=True) for a, b in zip(a_side, b_side, strict=True)
        ]

    def _check_max_length(self, max_length: int | None, pair: bool) -> int:
        if max_length is None:
            return self._model_max_length
        if isinstance(max_length, bool) or not isinstance(max_length, int):
            raise TypeError(f"max_length must be an int, got {max_length!r}")
        if max_length > self._model_max_length:
            warnings.warn(
                f"max_length={max_length} exceeds model_max_length={self._model_max_length} "
                f"(the model has no positions beyond it); using {self._model_max_length}",
                stacklevel=3,
            )
            max_length = self._model_max_length
        needed = self._backend.num_special_tokens_to_add(is_pair=pair)
        if max_length < needed:
            raise ValueError(
                f"max_length={max_length} cannot hold the {needed} special tokens of a "
                f"{'pair' if pair else 'single'} input ({self._layout(pair)})"
            )
        return max_length

    def encode(
        self, text: str, pair: str | None = None, max_length: int | None = None, truncation: bool = True
    ) -> list[int]:
        """Ids of one text (or pair) with its special tokens, truncated to `max_length` (default: the model's)."""
        if not isinstance(text, str) or (pair is not None and not isinstance(pair, str)):
            raise TypeError("encode takes str arguments; use __call__ for batches")
        enc = self(
            text, pair, max_length=max_length, truncation=truncation, padding=False, return_tensors=None
        )
        return enc["input_ids"][0]

    def tokenize(self, text: str) -> list[str]:
        """The tokens of `text`, without special tokens and without truncation."""
        if not isinstance(text, str):
            raise TypeError(f"tokenize takes a str, got {type(text).__name__}")
        with self._lock:
            return self._backend.encode(text, add_special_tokens=False).tokens

    def decode(self, ids: Iterable[int] | Any, skip_special_tokens: bool = True) -> str:
        """Text back from ids, through the backend's decoder (so it matches transformers)."""
        if hasattr(ids, "tolist"):
            ids = ids.tolist()
        ids = [int(i) for i in ids]
        return self._backend.decode(ids, skip_special_tokens=skip_special_tokens)

    def convert_ids_to_tokens(self, ids: int | Iterable[int]) -> str | list[str]:
        """Token strings for ids; an id outside the vocabulary is an error, not a silent unknown token."""
        if hasattr(ids, "tolist"):
            ids = ids.tolist()
        if isinstance(ids, int):
            return self._id_to_token(ids)
        return [self._id_to_token(int(i)) for i in ids]

    def _id_to_token(self, token_id: int) -> str:
        token = self._backend.id_to_token(token_id)
        if token is None:
            raise ValueError(f"id {token_id} is outside the vocabulary (size {self.vocab_size})")
        return token

    def convert_tokens_to_ids(self, tokens: str | Iterable[str]) -> int | list[int]:
        """Ids for token strings; unknown tokens map to the unknown token's id, as in transformers."""
        if isinstance(tokens, str):
            return self._token_to_id(tokens)
        return [self._token_to_id(t) for t in tokens]

    def _token_to_id(self, token: str) -> int:
        token_id = self._backend.token_to_id(token)
        return self.unk_token_id if token_id is None else token_id

    # -------------------------------------------------------------------------------------- properties

    @property
    def backend(self) -> tokenizers.Tokenizer:
        """The underlying `tokenizers.Tokenizer` (for features this wrapper does not expose)."""
        return self._backend

    @property
    def vocab_size(self) -> int:
        return self._backend.get_vocab_size(with_added_tokens=True)

    def __len__(self) -> int:
        return self.vocab_size

    @property
    def vocab(self) -> dict[str, int]:
        return self._backend.get_vocab(with_added_tokens=True)

    @property
    def model_max_length(self) -> int:
        return self._model_max_length

    @property
    def pad_token(self) -> str:
        return self._special_tokens["pad"]

    @property
    def unk_token(self) -> str:
        return self._special_tokens["unk"]

    @property
    def cls_token(self) -> str:
        return self._special_tokens["cls"]

    @property
    def sep_token(self) -> str:
        return self._special_tokens["sep"]

    @property
    def mask_token(self) -> str:
        return self._special_tokens["mask"]

    @property
    def pad_token_id(self) -> int:
        return self._special_ids["pad"]

    @property
    def unk_token_id(self) -> int:
        return self._special_ids["unk"]

    @property
    def cls_token_id(self) -> int:
        return self._special_ids["cls"]

    @property
    def sep_token_id(self) -> int:
        return self._special_ids["sep"]

    @property
    def mask_token_id(self) -> int:
        return self._special_ids["mask"]

    @property
    def special_token_ids(self) -> set[int]:
        ids = set(self._special_ids.values())
        ids.update(self._backend.token_to_id(t) for t in self._extra_special)
        return ids

    # -------------------------------------------------------------------------------------------- saving

    def _save_vocabulary(self, folder: Path) -> None:
        """Write the model's own vocabulary files (vocab.txt, or vocab.json and merges.txt)."""
        raise NotImplementedError

    def _special_tokens_map(self) -> dict[str, Any]:
        """special_tokens_map.json: the named special tokens and any extra ones."""
        raise NotImplementedError

    def _tokenizer_config(self, special_map: dict[str, Any]) -> dict[str, Any]:
        """tokenizer_config.json: what transformers needs to rebuild this tokenizer from the folder."""
        raise NotImplementedError

    def save_pretrained(self, folder: str | os.PathLike) -> Path:
        """Write the Hugging Face layout (the vocabulary files, tokenizer.json, tokenizer_config.json,
        special_tokens_map.json), each file atomically, so transformers can load the folder as is."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        self._save_vocabulary(folder)
        with self._lock:
            state = self._backend.to_str(pretty=True)
        with atomic_write(folder / TOKENIZER_FILE) as handle:
            handle.write(state)
        special_map = self._special_tokens_map()
        write_json(folder / CONFIG_FILE, self._tokenizer_config(special_map))
        write_json(folder / SPECIAL_TOKENS_MAP_FILE, special_map)
        return folder


# ------------------------------------------------------------------------------------------------ helpers


def write_json(path: Path, data: Any) -> None:
    """Pretty JSON, atomically (a crash leaves the old file or the new one)."""
    with atomic_write(path) as handle:
        json.dump(data, handle, indent=2, ensure_ascii=False)
        handle.write("\n")


def read_json(path: Path) -> Any:
    """Parse a JSON file; a broken one is a ValueError naming the file, not a bare JSONDecodeError."""
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path} is not valid JSON: {exc}") from exc


def read_config(folder: Path) -> dict[str, Any]:
    """tokenizer_config.json of `folder` as a dict ({} when absent)."""
    path = folder / CONFIG_FILE
    if not path.is_file():
        return {}
    config = read_json(path)
    if not isinstance(config, dict):
        raise ValueError(f"{path} must hold a JSON object, got {type(config).__name__}")
    return config


def token_content(value: Any) -> str | None:
    """A special token from tokenizer_config.json, which holds a string or a serialised AddedToken."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, dict) and "content" in value:
        return str(value["content"])
    raise ValueError(f"cannot read a special token from {value!r}")


def config_max_length(config: dict[str, Any], default: int = 512) -> int:
    """model_max_length from a config; "no limit" is not true of any BERT: its position table has an end."""
    max_len = config.get("model_max_length", default)
    if not isinstance(max_len, int) or isinstance(max_len, bool) or max_len >= NO_LIMIT:
        return default
    return max_len


def _as_batch(texts: Any, name: str) -> list[str]:
    if isinstance(texts, str):
        return [texts]
    if not isinstance(texts, (list, tuple)):
        raise TypeError(f"{name} must be a str or a list of str, got {type(texts).__name__}")
    if not texts:
        raise ValueError(f"{name} is an empty list: there is nothing to encode")
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise TypeError(f"{name}[{i}] is a {type(text).__name__}, not a str")
    return list(texts)


def _padding_mode(padding: bool | str) -> str:
    if padding is True or padding == "longest":
        return "longest"
    if padding == "max_length":
        return "max_length"
    if padding is False or padding == "do_not_pad":
        return "none"
    raise ValueError(f"padding must be True/'longest', 'max_length' or False/'do_not_pad', got {padding!r}")


def as_files(source: Any) -> list[str] | None:
    """The file list if `source` names files, else None (it is then an iterable of texts)."""
    if isinstance(source, (str, os.PathLike)):
        items = [source]
    elif isinstance(source, (list, tuple)) and source:
        items = list(source)
        # A list of plain strings is text unless every one is an existing file.
        if not all(isinstance(p, os.PathLike) or (isinstance(p, str) and os.path.isfile(p)) for p in items):
            if any(isinstance(p, os.PathLike) for p in items):
                raise TypeError("a training list mixes paths and texts; pass one kind")
            return None
    else:
        return None
    for p in items:
        if not os.path.isfile(p):
            if os.path.exists(p):
                raise ValueError(f"training file {p} is not a regular file")
            raise FileNotFoundError(f"training file {p} does not exist")
    return [os.fspath(p) for p in items]


def checked_texts(texts: Iterable[Any]) -> Iterator[str]:
    """The training texts, each checked to be a str (a stray int would otherwise crash in Rust)."""
    for text in texts:
        if not isinstance(text, str):
            raise TypeError(f"training texts must be str, got {type(text).__name__}")
        yield text
