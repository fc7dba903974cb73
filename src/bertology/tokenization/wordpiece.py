"""BERT WordPiece tokenization on top of Hugging Face `tokenizers`.

The Rust `tokenizers` library does the real work (normalising, pre-tokenising, WordPiece, training); this
module only wires it up the way BERT expects; batching, padding, truncation and saving come from
:class:`~bertology.tokenization.base.BaseTokenizer`. Ids match `transformers.BertTokenizerFast`
exactly and a saved folder loads in `transformers` unchanged.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import tokenizers
from tokenizers import decoders, normalizers, pre_tokenizers, processors, trainers
from tokenizers.models import WordPiece

from bertology.tokenization.base import (
    TOKENIZER_FILE,
    BaseTokenizer,
    BatchEncoding,
    as_files,
    checked_texts,
    config_max_length,
    read_config,
    token_content,
)
from bertology.utils.io import atomic_write

__all__ = ["BatchEncoding", "WordPieceTokenizer", "train_wordpiece"]

VOCAB_FILE = "vocab.txt"

# The roles BERT needs, in the order the default vocabulary gives them ids.
_ROLES = ("pad", "unk", "cls", "sep", "mask")
DEFAULT_SPECIAL_TOKENS: tuple[str, ...] = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
_DEFAULT_BY_ROLE = dict(zip(_ROLES, DEFAULT_SPECIAL_TOKENS, strict=True))

_W = TypeVar("_W", bound="WordPieceTokenizer")


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


class WordPieceTokenizer(BaseTokenizer):
    """A BERT WordPiece tokenizer whose ids equal `transformers.BertTokenizerFast`'s.

    Build one with :meth:`from_pretrained` (an existing vocabulary) or :meth:`train` (a new one).
    Encoding calls configure truncation and padding on the shared Rust backend, so they hold a lock
    to stay correct when several threads (e.g. a server) share one tokenizer.
    """

    ROLES: ClassVar[tuple[str, ...]] = _ROLES
    SPECIAL_TOKEN_DEFAULTS: ClassVar[dict[str, str]] = _DEFAULT_BY_ROLE

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
        self._do_lower_case = bool(do_lower_case)
        self._strip_accents = strip_accents
        self._tokenize_chinese_chars = bool(tokenize_chinese_chars)
        super().__init__(
            backend, model_max_length=model_max_length, special_tokens=special_tokens, source=source
        )
        tokens = self._special_tokens
        if backend.post_processor is None:
            backend.post_processor = _bert_post_processor(
                tokens["cls"], self._special_ids["cls"], tokens["sep"], self._special_ids["sep"]
            )
        if backend.decoder is None:
            backend.decoder = decoders.WordPiece(prefix="##")

    # ----------------------------------------------------------------------------------------- loading

    @classmethod
    def from_pretrained(cls, path: str | os.PathLike) -> WordPieceTokenizer:
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
        config = read_config(folder)
        special = {role: token_content(config.get(f"{role}_token")) for role in _ROLES}
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
        max_len = config_max_length(config)
        tokenizer = cls(
            backend,
            do_lower_case=lowercase,
            strip_accents=strip_accents,
            tokenize_chinese_chars=chinese,
            model_max_length=max_len,
            special_tokens=special,
            source=str(file),
        )
        extra = [token_content(t) for t in config.get("additional_special_tokens") or []]
        tokenizer._add_extra_special(t for t in extra if t and tokenizer.backend.token_to_id(t) is not None)
        return tokenizer

    @classmethod
    def from_wordpiece(cls: type[_W], tokenizer: WordPieceTokenizer, **kwargs: Any) -> _W:
        """The same vocabulary and settings as `tokenizer`, as this class: a model's own tokenizer (ChineseBERT's,
        AMBERT's) made from a plain WordPiece one; `kwargs` are what the subclass needs besides."""
        backend = tokenizers.Tokenizer.from_str(tokenizer.backend.to_str())
        out = cls(
            backend,
            do_lower_case=tokenizer.do_lower_case,
            strip_accents=tokenizer.strip_accents,
            tokenize_chinese_chars=tokenizer.tokenize_chinese_chars,
            model_max_length=tokenizer.model_max_length,
            special_tokens={role: tokenizer._special_tokens[role] for role in cls.ROLES},
            source=repr(tokenizer),
            **kwargs,
        )
        out._add_extra_special(tokenizer._extra_special)
        return out

    @classmethod
    def for_model_folder(cls: type[_W], tokenizer: WordPieceTokenizer, extras: str | os.PathLike) -> _W:
        """`tokenizer` as this class, for a model whose tokenizer needs more than the vocabulary: the files
        it reads besides (AMBERT's coarse vocabulary) are taken from the folder `extras` (a run folder).
        A pretraining run calls this to save, beside the model it exports, the tokenizer that model reads."""
        return cls.from_wordpiece(tokenizer)

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
    ) -> WordPieceTokenizer:
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
        files = as_files(files_or_iterator)
        with tempfile.TemporaryDirectory(prefix="bertology-wordpiece-") as spool:
            if files is None:
                # One-shot iterators are spooled to disk: the alphabet pass and the trainer both read them.
                files = [os.path.join(spool, "corpus.txt")]
                with open(files[0], "w", encoding="utf-8") as handle:
                    for text in checked_texts(files_or_iterator):
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

    # -------------------------------------------------------------------------------------- properties

    @property
    def do_lower_case(self) -> bool:
        return self._do_lower_case

    @property
    def strip_accents(self) -> bool | None:
        return self._strip_accents

    @property
    def tokenize_chinese_chars(self) -> bool:
        return self._tokenize_chinese_chars

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(vocab_size={self.vocab_size}, do_lower_case={self.do_lower_case}, "
            f"model_max_length={self.model_max_length})"
        )

    # -------------------------------------------------------------------------------------------- saving

    def _save_vocabulary(self, folder: Path) -> None:
        # vocab.txt: one token a line, line number = id, as BertTokenizer reads it.
        vocab = self.vocab
        by_id = sorted(vocab.items(), key=lambda item: item[1])
        if [i for _, i in by_id] != list(range(len(by_id))):
            raise ValueError("the vocabulary ids are not contiguous from 0; vocab.txt cannot express them")
        bad = [t for t, _ in by_id if "\n" in t or "\r" in t]
        if bad:
            raise ValueError(f"tokens with line breaks cannot be written to vocab.txt: {bad[:5]}")
        with atomic_write(folder / VOCAB_FILE) as handle:
            handle.write("".join(f"{token}\n" for token, _ in by_id))

    def _special_tokens_map(self) -> dict[str, Any]:
        special_map: dict[str, Any] = {
            f"{role}_token": self._special_tokens[role] for role in ("unk", "sep", "pad", "cls", "mask")
        }
        if self._extra_special:
            special_map["additional_special_tokens"] = list(self._extra_special)
        return special_map

    def _tokenizer_config(self, special_map: dict[str, Any]) -> dict[str, Any]:
        return {
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


def train_wordpiece(
    files_or_iterator: str | os.PathLike | Iterable[str | os.PathLike], **kwargs: Any
) -> WordPieceTokenizer:
    """Function form of :meth:`WordPieceTokenizer.train` (for the CLI and scripts)."""
    return WordPieceTokenizer.train(files_or_iterator, **kwargs)


def __getattr__(name: str) -> Any:
    # This class was called `Tokenizer` (a clash with `tokenizers.Tokenizer`, used in this very file);
    # old imports of that name keep working, with a warning, until their callers move on.
    if name == "Tokenizer":
        import warnings

        warnings.warn(
            "bertology.tokenization.wordpiece.Tokenizer is now WordPieceTokenizer; "
            "bertology.Tokenizer is the auto class that picks a tokenizer for a folder",
            DeprecationWarning,
            stacklevel=2,
        )
        return WordPieceTokenizer
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")



# ------------------------------------------------------------------------------------------------ helpers


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
