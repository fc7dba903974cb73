"""BERT WordPiece tokenization on top of Hugging Face `tokenizers`.

The Rust `tokenizers` library does the real work (normalising, pre-tokenising, WordPiece, training); this
module only wires it up the way BERT expects and wraps it in a small, stable API, so that ids match
`transformers.BertTokenizerFast` exactly and a saved folder loads in `transformers` unchanged.
"""

from __future__ import annotations

import json
import os
import tempfile
import threading
import warnings
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import tokenizers
from tokenizers import AddedToken, decoders, normalizers, pre_tokenizers, processors, trainers
from tokenizers.models import WordPiece

from bertology.utils.io import atomic_write

__all__ = ["BatchEncoding", "Tokenizer", "train_wordpiece"]

TOKENIZER_FILE = "tokenizer.json"
VOCAB_FILE = "vocab.txt"
CONFIG_FILE = "tokenizer_config.json"
SPECIAL_TOKENS_MAP_FILE = "special_tokens_map.json"

# The roles BERT needs, in the order the default vocabulary gives them ids.
_ROLES = ("pad", "unk", "cls", "sep", "mask")
DEFAULT_SPECIAL_TOKENS: tuple[str, ...] = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
_DEFAULT_BY_ROLE = dict(zip(_ROLES, DEFAULT_SPECIAL_TOKENS, strict=True))
# transformers writes this sentinel when a tokenizer has no length limit of its own.
_NO_LIMIT = int(1e20)


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


def _bert_normalizer(lowercase: bool, strip_accents: bool | None, tokenize_chinese_chars: bool):
    return normalizers.BertNormalizer(
        clean_text=True,
        handle_chinese_chars=tokenize_chinese_chars,
        strip_accents=strip_accents,
        lowercase=lowercase,
    )


def _bert_post_processor(cls_token: str, cls_id: int, sep_token: str, sep_id: int):
    # Segment ids as in BERT: the second sentence and its closing [SEP] are type 1.
    return processors.TemplateProcessing(
        single=f"{cls_token}:0 $A:0 {sep_token}:0",
        pair=f"{cls_token}:0 $A:0 {sep_token}:0 $B:1 {sep_token}:1",
        special_tokens=[(cls_token, cls_id), (sep_token, sep_id)],
    )


def _read_json(path: Path) -> dict[str, Any]:
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


def _token_content(value: Any) -> str | None:
    # tokenizer_config.json may hold a special token as a string or as a serialised AddedToken.
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, dict) and "content" in value:
        return str(value["content"])
    raise ValueError(f"cannot read a special token from {value!r}")


class Tokenizer:
    """A BERT WordPiece tokenizer whose ids equal `transformers.BertTokenizerFast`'s.

    Build one with :meth:`from_pretrained` (an existing vocabulary) or :meth:`train` (a new one).
    Encoding calls configure truncation and padding on the shared Rust backend, so they hold a lock
    to stay correct when several threads (e.g. a server) share one tokenizer.
    """

    def __init__(
        self,
        backend: tokenizers.Tokenizer,
        *,
        do_lower_case: bool = True,
        strip_accents: bool | None = None,
        tokenize_chinese_chars: bool = True,
        model_max_length: int = 512,
        special_tokens: dict[str, str] | None = None,
        source: str = "<tokenizer>",
    ) -> None:
        self._backend = backend
        self._lock = threading.RLock()
        self._do_lower_case = bool(do_lower_case)
        self._strip_accents = strip_accents
        self._tokenize_chinese_chars = bool(tokenize_chinese_chars)
        if model_max_length < 2:
            raise ValueError(f"model_max_length must be at least 2 ([CLS] and [SEP]), got {model_max_length}")
        self._model_max_length = int(model_max_length)
        tokens = dict(_DEFAULT_BY_ROLE)
        tokens.update({k: v for k, v in (special_tokens or {}).items() if v is not None})
        unknown = set(tokens) - set(_ROLES)
        if unknown:
            raise ValueError(f"unknown special token roles {sorted(unknown)}; expected {list(_ROLES)}")
        self._special_tokens = tokens
        self._extra_special: list[str] = []
        self._special_ids: dict[str, int] = {}
        for role in _ROLES:
            token_id = backend.token_to_id(tokens[role])
            if token_id is None:
                raise ValueError(f"{source}: the vocabulary lacks the {role} token {tokens[role]!r}")
            self._special_ids[role] = token_id
        # Padding and truncation are decided per call; a tokenizer.json may carry stale settings.
        backend.no_padding()
        backend.no_truncation()
        # Treat the special tokens as atomic in raw text too ("[MASK]" stays one token), as transformers does.
        backend.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in tokens.values()])
        if backend.post_processor is None:
            backend.post_processor = _bert_post_processor(
                tokens["cls"], self._special_ids["cls"], tokens["sep"], self._special_ids["sep"]
            )
        if backend.decoder is None:
            backend.decoder = decoders.WordPiece(prefix="##")

    # ----------------------------------------------------------------------------------------- loading

    @classmethod
    def from_pretrained(cls, path: str | os.PathLike) -> Tokenizer:
        """Load from a folder (tokenizer.json preferred, else vocab.txt) or from either file directly.

        tokenizer_config.json beside it, when present, decides lower-casing, accent stripping, CJK
        splitting, model_max_length and the special tokens, exactly as transformers lets it.
        """
        path = Path(path)
        if path.is_dir():
            folder = path
            if (path / TOKENIZER_FILE).is_file():
                file = path / TOKENIZER_FILE
            elif (path / VOCAB_FILE).is_file():
                file = path / VOCAB_FILE
            else:
                raise FileNotFoundError(f"{path} holds neither {TOKENIZER_FILE} nor {VOCAB_FILE}")
        elif path.is_file():
            folder, file = path.parent, path
        else:
            raise FileNotFoundError(
                f"no tokenizer at {path}: expected a folder with {TOKENIZER_FILE} or {VOCAB_FILE}, or one of those files"
            )
        config = _read_json(folder / CONFIG_FILE) if (folder / CONFIG_FILE).is_file() else {}
        special = {role: _token_content(config.get(f"{role}_token")) for role in _ROLES}
        special = {k: v for k, v in special.items() if v is not None}

        if file.suffix == ".json":
            backend = tokenizers.Tokenizer.from_file(str(file))
            norm = json.loads(backend.to_str()).get("normalizer") or {}
            from_file = norm.get("type") == "BertNormalizer"
            lowercase = config.get("do_lower_case", norm.get("lowercase", True) if from_file else True)
            strip_accents = config.get("strip_accents", norm.get("strip_accents") if from_file else None)
            chinese = config.get(
                "tokenize_chinese_chars", norm.get("handle_chinese_chars", True) if from_file else True
            )
            # transformers rebuilds the normaliser from tokenizer_config.json, so the config wins.
            if from_file or norm == {}:
                backend.normalizer = _bert_normalizer(lowercase, strip_accents, chinese)
            if backend.pre_tokenizer is None:
                backend.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
        else:
            vocab = cls._read_vocab(file)
            for role in _ROLES:
                token = special.get(role, _DEFAULT_BY_ROLE[role])
                if token not in vocab:
                    raise ValueError(f"{file}: the vocabulary lacks the {role} token {token!r}")
            lowercase = config.get("do_lower_case", True)
            strip_accents = config.get("strip_accents")
            chinese = config.get("tokenize_chinese_chars", True)
            backend = tokenizers.Tokenizer(
                WordPiece(vocab, unk_token=special.get("unk", "[UNK]"), max_input_chars_per_word=100)
            )
            backend.normalizer = _bert_normalizer(lowercase, strip_accents, chinese)
            backend.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
            backend.decoder = decoders.WordPiece(prefix="##")
        max_len = config.get("model_max_length", 512)
        if not isinstance(max_len, int) or max_len >= _NO_LIMIT:
            max_len = 512  # "no limit" is not true of any BERT: its position table has an end.
        tokenizer = cls(
            backend,
            do_lower_case=lowercase,
            strip_accents=strip_accents,
            tokenize_chinese_chars=chinese,
            model_max_length=max_len,
            special_tokens=special,
            source=str(file),
        )
        extra = [_token_content(t) for t in config.get("additional_special_tokens") or []]
        tokenizer._add_extra_special(t for t in extra if t and tokenizer.backend.token_to_id(t) is not None)
        return tokenizer

    @staticmethod
    def _read_vocab(file: Path) -> dict[str, int]:
        # One token a line, id = line number; like transformers, a repeated token keeps its last id.
        with open(file, encoding="utf-8") as handle:
            tokens = handle.read().split("\n")
        if tokens and tokens[-1] == "":
            tokens.pop()
        if not tokens:
            raise ValueError(f"{file}: the vocabulary is empty")
        return {token.rstrip("\r"): i for i, token in enumerate(tokens)}

    # ---------------------------------------------------------------------------------------- training

    @classmethod
    def train(
        cls,
        files_or_iterator: str | os.PathLike | Iterable[str | os.PathLike],
        vocab_size: int = 30522,
        lowercase: bool = True,
        strip_accents: bool | None = None,
        tokenize_chinese_chars: bool = True,
        min_frequency: int = 2,
        special_tokens: Sequence[str] = DEFAULT_SPECIAL_TOKENS,
        limit_alphabet: int = 1000,
        model_max_length: int = 512,
        show_progress: bool = False,
    ) -> Tokenizer:
        """Train a new WordPiece vocabulary with the BERT normaliser and pre-tokeniser.

        `files_or_iterator` is a path, a list of paths (every item a `Path` or an existing file), or any
        iterable of text lines. Special tokens take ids 0.. in the order given and must include the five
        BERT roles ([PAD] [UNK] [CLS] [SEP] [MASK]); extra ones are kept as special tokens too.
        """
        special_tokens = list(special_tokens)
        if len(set(special_tokens)) != len(special_tokens):
            raise ValueError(f"special_tokens has duplicates: {special_tokens}")
        missing = [t for t in DEFAULT_SPECIAL_TOKENS if t not in special_tokens]
        if missing:
            raise ValueError(f"special_tokens must include the BERT special tokens; missing {missing}")
        if vocab_size <= len(special_tokens):
            raise ValueError(
                f"vocab_size={vocab_size} leaves no room beyond the {len(special_tokens)} special tokens"
            )

        normalizer = _bert_normalizer(lowercase, strip_accents, tokenize_chinese_chars)
        pre_tokenizer = pre_tokenizers.BertPreTokenizer()
        files = _as_files(files_or_iterator)
        with tempfile.TemporaryDirectory(prefix="bertology-wordpiece-") as spool:
            if files is None:
                # One-shot iterators are spooled to disk: the alphabet pass and the trainer both read them.
                files = [os.path.join(spool, "corpus.txt")]
                with open(files[0], "w", encoding="utf-8") as handle:
                    for text in _checked_texts(files_or_iterator):
                        handle.write(text)
                        handle.write("\n")
            alphabet, continuing = _corpus_alphabet(files, normalizer, pre_tokenizer, limit_alphabet)
            if not alphabet:
                raise ValueError("the training corpus is empty: it holds no characters to learn from")
            # tokenizers' trainer breaks ties by hash-map order (huggingface/tokenizers#1794): which rare
            # characters survive limit_alphabet, and the ids of the "##c" tokens, which then decide ties
            # between merges. Fixing the alphabet and pre-registering every "##c" makes training repeatable.
            trainer = trainers.WordPieceTrainer(
                vocab_size=vocab_size,
                min_frequency=min_frequency,
                show_progress=show_progress,
                special_tokens=special_tokens + [f"##{c}" for c in continuing],
                limit_alphabet=len(alphabet),
                initial_alphabet=alphabet,
                continuing_subword_prefix="##",
            )
            scratch = tokenizers.Tokenizer(WordPiece(unk_token="[UNK]", max_input_chars_per_word=100))
            scratch.normalizer = normalizer
            scratch.pre_tokenizer = pre_tokenizer
            scratch.train(files, trainer)
        vocab = scratch.get_vocab(with_added_tokens=False)
        if len(vocab) > vocab_size:
            # The trainer never drops alphabet characters (nor their ## forms), so a tiny budget overflows.
            raise ValueError(
                f"the corpus alphabet alone needs {len(vocab)} tokens, more than vocab_size={vocab_size}; "
                f"raise vocab_size or lower limit_alphabet (now {limit_alphabet})"
            )
        # Rebuild without the "##c" helpers as added tokens: they are ordinary word pieces.
        backend = tokenizers.Tokenizer(WordPiece(vocab, unk_token="[UNK]", max_input_chars_per_word=100))
        backend.normalizer = normalizer
        backend.pre_tokenizer = pre_tokenizer
        backend.decoder = decoders.WordPiece(prefix="##")
        ids = {t: backend.token_to_id(t) for t in DEFAULT_SPECIAL_TOKENS}
        backend.post_processor = _bert_post_processor("[CLS]", ids["[CLS]"], "[SEP]", ids["[SEP]"])
        tokenizer = cls(
            backend,
            do_lower_case=lowercase,
            strip_accents=strip_accents,
            tokenize_chinese_chars=tokenize_chinese_chars,
            model_max_length=model_max_length,
            source="trained vocabulary",
        )
        tokenizer._add_extra_special([t for t in special_tokens if t not in DEFAULT_SPECIAL_TOKENS])
        return tokenizer

    def _add_extra_special(self, tokens: Iterable[str]) -> None:
        # Extra special tokens (beyond the five roles) stay atomic and are skipped by decode.
        for token in tokens:
            if token not in self._extra_special:
                self._backend.add_special_tokens([AddedToken(token, special=True, normalized=False)])
                self._extra_special.append(token)

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

        with self._lock:
            try:
                if pairs is not None and truncation:
                    encodings = self._encode_pairs_truncated(batch, pairs, max_length)
                else:
                    if truncation:
                        self._backend.enable_truncation(
                            max_length, strategy="longest_first", direction="right"
                        )
                    inputs: list[Any] = batch if pairs is None else list(zip(batch, pairs, strict=True))
                    encodings = self._backend.encode_batch(inputs, add_special_tokens=True)
            finally:
                self._backend.no_truncation()
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

    def _encode_pairs_truncated(self, firsts: list[str], seconds: list[str], max_length: int) -> list[Any]:
        """Pairs truncated longest-first, exactly as tokenizers does, without its quadratic cost.

        tokenizers keeps every combination of the two sides' overflow windows, so two long documents
        cost (n1/max_length) * (n2/max_length) encodings. Longest-first only looks at each side's
        length relative to the budget and to the other side, so capping each side just past the budget
        (keeping which one is longer) first gives the same result for a linear cost.
        """
        backend = self._backend
        backend.no_truncation()
        a_side = backend.encode_batch(firsts, add_special_tokens=False)
        b_side = backend.encode_batch(seconds, add_special_tokens=False)
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
        needed = 3 if pair else 2
        if max_length < needed:
            raise ValueError(
                f"max_length={max_length} cannot hold the {needed} special tokens of a "
                f"{'pair' if pair else 'single'} input ([CLS] ... [SEP]{' ... [SEP]' if pair else ''})"
            )
        return max_length

    def encode(
        self, text: str, pair: str | None = None, max_length: int | None = None, truncation: bool = True
    ) -> list[int]:
        """Ids of one text (or pair) with [CLS]/[SEP], truncated to `max_length` (default: the model's)."""
        if not isinstance(text, str) or (pair is not None and not isinstance(pair, str)):
            raise TypeError("encode takes str arguments; use __call__ for batches")
        enc = self(
            text, pair, max_length=max_length, truncation=truncation, padding=False, return_tensors=None
        )
        return enc["input_ids"][0]

    def tokenize(self, text: str) -> list[str]:
        """The word pieces of `text`, without special tokens and without truncation."""
        if not isinstance(text, str):
            raise TypeError(f"tokenize takes a str, got {type(text).__name__}")
        with self._lock:
            return self._backend.encode(text, add_special_tokens=False).tokens

    def decode(self, ids: Iterable[int] | Any, skip_special_tokens: bool = True) -> str:
        """Text back from ids; word pieces are re-joined and spacing before punctuation tidied."""
        if hasattr(ids, "tolist"):
            ids = ids.tolist()
        ids = [int(i) for i in ids]
        return self._backend.decode(ids, skip_special_tokens=skip_special_tokens)

    def convert_ids_to_tokens(self, ids: int | Iterable[int]) -> str | list[str]:
        """Token strings for ids; an id outside the vocabulary is an error, not a silent [UNK]."""
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
        """Ids for token strings; unknown tokens map to [UNK], as in transformers."""
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
    def do_lower_case(self) -> bool:
        return self._do_lower_case

    @property
    def strip_accents(self) -> bool | None:
        return self._strip_accents

    @property
    def tokenize_chinese_chars(self) -> bool:
        return self._tokenize_chinese_chars

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

    def __repr__(self) -> str:
        return (
            f"Tokenizer(vocab_size={self.vocab_size}, do_lower_case={self.do_lower_case}, "
            f"model_max_length={self.model_max_length})"
        )

    # -------------------------------------------------------------------------------------------- saving

    def save_pretrained(self, folder: str | os.PathLike) -> Path:
        """Write the Hugging Face layout (vocab.txt, tokenizer.json, tokenizer_config.json,
        special_tokens_map.json), each file atomically, so transformers can load the folder as is."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        vocab = self.vocab
        by_id = sorted(vocab.items(), key=lambda item: item[1])
        if [i for _, i in by_id] != list(range(len(by_id))):
            raise ValueError("the vocabulary ids are not contiguous from 0; vocab.txt cannot express them")
        bad = [t for t, _ in by_id if "\n" in t or "\r" in t]
        if bad:
            raise ValueError(f"tokens with line breaks cannot be written to vocab.txt: {bad[:5]}")
        with atomic_write(folder / VOCAB_FILE) as handle:
            handle.write("".join(f"{token}\n" for token, _ in by_id))
        with self._lock:
            state = self._backend.to_str(pretty=True)
        with atomic_write(folder / TOKENIZER_FILE) as handle:
            handle.write(state)
        special_map = {
            f"{role}_token": self._special_tokens[role] for role in ("unk", "sep", "pad", "cls", "mask")
        }
        if self._extra_special:
            special_map["additional_special_tokens"] = list(self._extra_special)
        config = {
            "tokenizer_class": "BertTokenizer",
            "do_lower_case": self._do_lower_case,
            "strip_accents": self._strip_accents,
            "tokenize_chinese_chars": self._tokenize_chinese_chars,
            "do_basic_tokenize": True,
            "never_split": None,
            "model_max_length": self._model_max_length,
            "clean_up_tokenization_spaces": True,
            **special_map,
        }
        with atomic_write(folder / CONFIG_FILE) as handle:
            json.dump(config, handle, indent=2, ensure_ascii=False)
            handle.write("\n")
        with atomic_write(folder / SPECIAL_TOKENS_MAP_FILE) as handle:
            json.dump(special_map, handle, indent=2, ensure_ascii=False)
            handle.write("\n")
        return folder


def train_wordpiece(
    files_or_iterator: str | os.PathLike | Iterable[str | os.PathLike], **kwargs: Any
) -> Tokenizer:
    """Function form of :meth:`Tokenizer.train` (for the CLI and scripts)."""
    return Tokenizer.train(files_or_iterator, **kwargs)


# ------------------------------------------------------------------------------------------------ helpers


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


def _as_files(source: Any) -> list[str] | None:
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
            raise FileNotFoundError(f"training file {p} does not exist")
    return [os.fspath(p) for p in items]


def _checked_texts(texts: Iterable[Any]) -> Iterator[str]:
    for text in texts:
        if not isinstance(text, str):
            raise TypeError(f"training texts must be str, got {type(text).__name__}")
        yield text


def _corpus_alphabet(
    files: list[str], normalizer: Any, pre_tokenizer: Any, limit_alphabet: int | None, chunk: int = 4096
) -> tuple[list[str], list[str]]:
    """The characters the trainer should keep and those of them seen inside words (they need "##c").

    Counts characters exactly as the trainer does (normalised, pre-tokenised words) and keeps the
    `limit_alphabet` most frequent, ties going to the lower code point, so the choice is repeatable.
    """
    counts: Counter[str] = Counter()
    inner: set[str] = set()

    def consume(lines: list[str]) -> None:
        # Newlines are whitespace to the BERT normaliser, so a chunk of lines splits into the same words.
        words = [w for w, _ in pre_tokenizer.pre_tokenize_str(normalizer.normalize_str("\n".join(lines)))]
        counts.update("".join(words))
        inner.update("".join(w[1:] for w in words))

    for path in files:
        with open(path, encoding="utf-8") as handle:
            lines: list[str] = []
            for line in handle:
                lines.append(line)
                if len(lines) >= chunk:
                    consume(lines)
                    lines = []
            if lines:
                consume(lines)
    ranked = sorted(counts, key=lambda c: (-counts[c], c))
    if limit_alphabet is not None:
        ranked = ranked[:limit_alphabet]
    alphabet = sorted(ranked)
    keep = set(alphabet)
    return alphabet, sorted(c for c in inner if c in keep)
