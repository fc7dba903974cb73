"""RoBERTa's byte-level BPE tokenization on top of Hugging Face `tokenizers`.

Byte-level means every string maps to the 256 byte symbols before any merge, so nothing is ever
unknown and decoding gives the exact text back. The pipeline is the one `transformers.RobertaTokenizer`
rebuilds from vocab.json and merges.txt (ByteLevel pre-tokenizer without a prefix space, BPE, ByteLevel
decoder, `<s> A </s>` / `<s> A </s></s> B </s>` with trimmed offsets), so ids and offsets match it and a
saved folder loads in transformers unchanged. Batching, padding, truncation and saving come from
:class:`~bertology.tokenization.base.BaseTokenizer`, shared with the WordPiece tokenizer.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, ClassVar

import tokenizers
from tokenizers import AddedToken, decoders, pre_tokenizers, processors, trainers
from tokenizers.models import BPE

from bertology.tokenization.base import (
    TOKENIZER_FILE,
    BaseTokenizer,
    as_files,
    checked_texts,
    config_max_length,
    read_config,
    read_json,
    token_content,
    write_json,
)
from bertology.utils.io import atomic_write

__all__ = ["ByteLevelBPETokenizer"]

VOCAB_FILE = "vocab.json"
MERGES_FILE = "merges.txt"
_MERGES_HEADER = "#version: 0.2"

# The roles transformers' RobertaTokenizer knows; bos/cls and eos/sep share a token.
_ROLES = ("bos", "eos", "unk", "sep", "pad", "cls", "mask")
DEFAULT_SPECIAL_TOKENS: tuple[str, ...] = ("<s>", "<pad>", "</s>", "<unk>", "<mask>")
_DEFAULT_BY_ROLE = {
    "bos": "<s>",
    "eos": "</s>",
    "unk": "<unk>",
    "sep": "</s>",
    "pad": "<pad>",
    "cls": "<s>",
    "mask": "<mask>",
}
_FLAGS = ("lstrip", "rstrip", "single_word")


def _build_backend(
    vocab: dict[str, int], merges: list[tuple[str, str]], add_prefix_space: bool
) -> tokenizers.Tokenizer:
    """The backend exactly as transformers' RobertaTokenizer builds it from vocab and merges."""
    backend = tokenizers.Tokenizer(
        BPE(
            vocab=vocab,
            merges=merges,
            dropout=None,
            continuing_subword_prefix="",
            end_of_word_suffix="",
            fuse_unk=False,
        )
    )
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=add_prefix_space)
    return backend


class ByteLevelBPETokenizer(BaseTokenizer):
    """A RoBERTa byte-level BPE tokenizer whose ids and offsets equal `transformers.RobertaTokenizerFast`'s.

    Build one with :meth:`from_pretrained` or :meth:`train`. Special tokens: `<s>` (cls/bos),
    `<pad>`, `</s>` (sep/eos), `<unk>` and `<mask>`; `<mask>` swallows the space before it (lstrip),
    as in RoBERTa, so "a <mask>." predicts the word *with* its leading space. token_type_ids are all
    zeros, which is what RoBERTa (one segment embedding) and transformers give.
    """

    ROLES: ClassVar[tuple[str, ...]] = _ROLES
    SPECIAL_TOKEN_DEFAULTS: ClassVar[dict[str, str]] = _DEFAULT_BY_ROLE

    def __init__(
        self,
        backend: tokenizers.Tokenizer,
        *,
        add_prefix_space: bool = False,
        trim_offsets: bool = True,
        model_max_length: int = 512,
        special_tokens: dict[str, str] | None = None,
        special_token_flags: dict[str, dict[str, bool]] | None = None,
        source: str = "<tokenizer>",
    ) -> None:
        """Wrap `backend` (a BPE model); its pre-tokenizer, decoder and post-processor are set to RoBERTa's.

        `special_token_flags` maps a special token to AddedToken flags (lstrip/rstrip/single_word)
        that override RoBERTa's defaults (only `<mask>` strips, on its left).
        """
        self._add_prefix_space = bool(add_prefix_space)
        self._trim_offsets = bool(trim_offsets)
        self._flags = {k: dict(v) for k, v in (special_token_flags or {}).items()}
        backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=self._add_prefix_space)
        backend.decoder = decoders.ByteLevel()
        super().__init__(
            backend, model_max_length=model_max_length, special_tokens=special_tokens, source=source
        )
        backend.post_processor = processors.RobertaProcessing(
            (self.sep_token, self.sep_token_id),
            (self.cls_token, self.cls_token_id),
            trim_offsets=self._trim_offsets,
            add_prefix_space=self._add_prefix_space,
        )

    def _special_added_token(self, role: str, token: str) -> AddedToken:
        flags = {"lstrip": role == "mask", "rstrip": False, "single_word": False}
        flags.update({k: bool(v) for k, v in self._flags.get(token, {}).items() if k in _FLAGS})
        return AddedToken(token, special=True, normalized=False, **flags)

    def _layout(self, pair: bool) -> str:
        cls, sep = self.cls_token, self.sep_token
        return f"{cls} ... {sep}{sep} ... {sep}" if pair else f"{cls} ... {sep}"

    # ----------------------------------------------------------------------------------------- loading

    @classmethod
    def from_pretrained(cls, path: str | os.PathLike) -> ByteLevelBPETokenizer:
        """Load from a folder (tokenizer.json preferred, else vocab.json + merges.txt) or from one of those files.

        As in transformers, only the vocabulary and merges are taken from the files: the rest of the
        pipeline is RoBERTa's, with tokenizer_config.json (when present) deciding add_prefix_space,
        trim_offsets, model_max_length and the special tokens.
        """
        path = Path(path)
        if path.is_dir():
            folder = path
            if (folder / TOKENIZER_FILE).is_file():
                file = folder / TOKENIZER_FILE
            elif (folder / VOCAB_FILE).is_file() or (folder / MERGES_FILE).is_file():
                file = folder / VOCAB_FILE
            else:
                raise FileNotFoundError(
                    f"{folder} holds neither {TOKENIZER_FILE} nor {VOCAB_FILE} + {MERGES_FILE}"
                )
        elif path.is_file():
            folder = path.parent
            file = folder / VOCAB_FILE if path.name == MERGES_FILE else path
        else:
            raise FileNotFoundError(
                f"no tokenizer at {path}: expected a folder with {TOKENIZER_FILE} or {VOCAB_FILE} + "
                f"{MERGES_FILE}, or one of those files"
            )
        config = read_config(folder)
        flags: dict[str, dict[str, bool]] = {}
        added: list[dict[str, Any]] = []
        if file.name == VOCAB_FILE or file.suffix == ".txt":
            vocab = _read_vocab_json(file)
            merges = _read_merges_txt(file.parent / MERGES_FILE)
            source = f"{file} + {file.parent / MERGES_FILE}"
        else:
            vocab, merges, added = _read_tokenizer_json(file)
            source = str(file)
        # Added tokens as transformers takes them: the config's added_tokens_decoder, else tokenizer.json's.
        decoder = config.get("added_tokens_decoder")
        if isinstance(decoder, dict) and decoder:
            added = [dict(v, id=int(k)) for k, v in decoder.items() if isinstance(v, dict)]
        for entry in added:
            flags[str(entry.get("content"))] = {k: bool(entry[k]) for k in _FLAGS if k in entry}
        special: dict[str, str] = {}
        for role in _ROLES:
            value = config.get(f"{role}_token")
            content = token_content(value)
            if content is not None:
                special[role] = content
            if isinstance(value, dict):
                flags[content] = {k: bool(value[k]) for k in _FLAGS if k in value}
        for role in _ROLES:
            token = special.get(role, _DEFAULT_BY_ROLE[role])
            if token not in vocab:
                raise ValueError(f"{file}: the vocabulary lacks the {role} token {token!r}")
        try:
            backend = _build_backend(vocab, merges, bool(config.get("add_prefix_space", False)))
        except Exception as exc:  # tokenizers reports a merge of unknown tokens as a bare Exception
            raise ValueError(
                f"{source}: cannot build a BPE model from the vocabulary and merges: {exc}"
            ) from exc
        tokenizer = cls(
            backend,
            add_prefix_space=bool(config.get("add_prefix_space", False)),
            trim_offsets=bool(config.get("trim_offsets", True)),
            model_max_length=config_max_length(config),
            special_tokens=special,
            special_token_flags=flags,
            source=source,
        )
        roles = set(tokenizer._special_tokens.values())
        extra = [token_content(t) for t in config.get("additional_special_tokens") or []]
        extra += [str(e["content"]) for e in added if e.get("special") and e.get("content") not in roles]
        tokenizer._add_extra_special(t for t in extra if t and t not in roles)
        plain = [e for e in added if not e.get("special") and e.get("content")]
        if plain:
            tokenizer.backend.add_tokens(
                [
                    AddedToken(
                        str(e["content"]),
                        special=False,
                        normalized=bool(e.get("normalized", True)),
                        **{k: bool(e[k]) for k in _FLAGS if k in e},
                    )
                    for e in plain
                ]
            )
        return tokenizer

    # ---------------------------------------------------------------------------------------- training

    @classmethod
    def train(
        cls,
        files_or_iterator: str | os.PathLike | Iterable[str | os.PathLike],
        vocab_size: int = 50265,
        min_frequency: int = 2,
        special_tokens: Sequence[str] = DEFAULT_SPECIAL_TOKENS,
        model_max_length: int = 512,
        show_progress: bool = False,
    ) -> ByteLevelBPETokenizer:
        """Train a new byte-level BPE vocabulary (vocab and merges) the way RoBERTa's was.

        `files_or_iterator` is a path, a list of paths (every item a `Path` or an existing file), or any
        iterable of texts. Special tokens take ids 0.. in the order given and must include
        <s> <pad> </s> <unk> <mask>; extra ones are kept as special tokens too. The 256 byte symbols
        always follow them, so nothing is ever unknown.

        Training is repeatable: tokenizers' BPE trainer breaks equal counts by the pair's token ids,
        which come from the alphabet (sorted by code point) and the merge order, never from hash-map
        order; the one order-dependent step, cutting the alphabet to `limit_alphabet`, never runs here
        because the full byte alphabet is always given. (The WordPiece trainer needs a workaround for
        exactly that step.)
        """
        special_tokens = list(special_tokens)
        if len(set(special_tokens)) != len(special_tokens):
            raise ValueError(f"special_tokens has duplicates: {special_tokens}")
        missing = [t for t in DEFAULT_SPECIAL_TOKENS if t not in special_tokens]
        if missing:
            raise ValueError(f"special_tokens must include the RoBERTa special tokens; missing {missing}")
        alphabet = pre_tokenizers.ByteLevel.alphabet()
        floor = len(special_tokens) + len(alphabet)
        if vocab_size <= floor:
            raise ValueError(
                f"vocab_size={vocab_size} leaves no room for merges: the {len(special_tokens)} special "
                f"tokens and the {len(alphabet)}-symbol byte alphabet already take {floor}"
            )
        trainer = trainers.BpeTrainer(
            vocab_size=vocab_size,
            min_frequency=min_frequency,
            show_progress=show_progress,
            special_tokens=special_tokens,
            initial_alphabet=sorted(alphabet),
        )
        scratch = tokenizers.Tokenizer(BPE())
        scratch.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        files = as_files(files_or_iterator)
        if files is None:
            seen = [0]
            scratch.train_from_iterator(_counting(checked_texts(files_or_iterator), seen), trainer)
            empty = seen[0] == 0
        else:
            empty = all(os.path.getsize(f) == 0 for f in files)
            if not empty:
                scratch.train(files, trainer)
        if empty:
            raise ValueError("the training corpus is empty: it holds no text to learn from")
        vocab, merges, _ = _model_state(json.loads(scratch.to_str()), "trained model")
        tokenizer = cls(
            _build_backend(vocab, merges, add_prefix_space=False),
            model_max_length=model_max_length,
            source="trained vocabulary",
        )
        tokenizer._add_extra_special([t for t in special_tokens if t not in DEFAULT_SPECIAL_TOKENS])
        return tokenizer

    # -------------------------------------------------------------------------------------- properties

    @property
    def bos_token(self) -> str:
        return self._special_tokens["bos"]

    @property
    def eos_token(self) -> str:
        return self._special_tokens["eos"]

    @property
    def bos_token_id(self) -> int:
        return self._special_ids["bos"]

    @property
    def eos_token_id(self) -> int:
        return self._special_ids["eos"]

    @property
    def add_prefix_space(self) -> bool:
        return self._add_prefix_space

    @property
    def trim_offsets(self) -> bool:
        return self._trim_offsets

    @property
    def merges(self) -> list[tuple[str, str]]:
        """The merge rules in priority order (what merges.txt holds)."""
        with self._lock:
            state = json.loads(self._backend.to_str())
        return _model_state(state, "tokenizer")[1]

    def __repr__(self) -> str:
        return (
            f"ByteLevelBPETokenizer(vocab_size={self.vocab_size}, add_prefix_space={self.add_prefix_space}, "
            f"model_max_length={self.model_max_length})"
        )

    # -------------------------------------------------------------------------------------------- saving

    def _save_vocabulary(self, folder: Path) -> None:
        # vocab.json holds the BPE model's own tokens (special ones included, as RoBERTa's does);
        # merges.txt one "left right" rule a line, highest priority first, after the version header.
        with self._lock:
            state = json.loads(self._backend.to_str())
        vocab, merges, _ = _model_state(state, "tokenizer")
        bad = [pair for pair in merges if any(" " in t or "\n" in t or "\r" in t for t in pair)]
        if bad:
            raise ValueError(
                f"merges whose tokens hold spaces or line breaks cannot go in merges.txt: {bad[:5]}"
            )
        write_json(folder / VOCAB_FILE, dict(sorted(vocab.items(), key=lambda item: item[1])))
        with atomic_write(folder / MERGES_FILE) as handle:
            handle.write(_MERGES_HEADER + "\n")
            handle.write("".join(f"{a} {b}\n" for a, b in merges))

    def _special_tokens_map(self) -> dict[str, Any]:
        special_map: dict[str, Any] = {}
        for role in _ROLES:
            token = self._backend.get_added_tokens_decoder().get(self._special_ids[role])
            if token is not None and (token.lstrip or token.rstrip or token.single_word):
                special_map[f"{role}_token"] = _added_token_state(token, with_special=False)
            else:
                special_map[f"{role}_token"] = self._special_tokens[role]
        if self._extra_special:
            special_map["additional_special_tokens"] = list(self._extra_special)
        return special_map

    def _tokenizer_config(self, special_map: dict[str, Any]) -> dict[str, Any]:
        # added_tokens_decoder carries <mask>'s lstrip: transformers rebuilds the backend from vocab
        # and merges and would otherwise re-add <mask> as a plain special token.
        added = self._backend.get_added_tokens_decoder()
        return {
            "tokenizer_class": "RobertaTokenizer",
            "add_prefix_space": self._add_prefix_space,
            "trim_offsets": self._trim_offsets,
            "errors": "replace",
            "model_max_length": self._model_max_length,
            "clean_up_tokenization_spaces": False,
            **{f"{role}_token": self._special_tokens[role] for role in _ROLES},
            **({"additional_special_tokens": list(self._extra_special)} if self._extra_special else {}),
            "added_tokens_decoder": {str(i): _added_token_state(added[i]) for i in sorted(added)},
        }


# ------------------------------------------------------------------------------------------------ helpers


def _counting(texts: Iterator[str], seen: list[int]) -> Iterator[str]:
    # Counts non-empty texts on the way to the trainer, which cannot say whether it saw any.
    for text in texts:
        if text:
            seen[0] += 1
        yield text


def _added_token_state(token: AddedToken, with_special: bool = True) -> dict[str, Any]:
    state = {
        "content": token.content,
        "lstrip": token.lstrip,
        "normalized": token.normalized,
        "rstrip": token.rstrip,
        "single_word": token.single_word,
    }
    if with_special:
        state["special"] = token.special
    return state


def _model_state(
    state: Any, source: str
) -> tuple[dict[str, int], list[tuple[str, str]], list[dict[str, Any]]]:
    """Vocabulary, merges and added tokens out of a parsed tokenizer.json (a BPE model, or a ValueError)."""
    model = state.get("model") if isinstance(state, dict) else None
    if not isinstance(model, dict):
        raise ValueError(f"{source}: no 'model' object; this is not a tokenizer.json")
    if model.get("type", "BPE") != "BPE":
        raise ValueError(
            f"{source}: the model is {model.get('type')}, not BPE; use the matching tokenizer class"
        )
    vocab, raw = model.get("vocab"), model.get("merges")
    if not isinstance(vocab, dict) or not isinstance(raw, list):
        raise ValueError(f"{source}: a BPE model needs a 'vocab' object and a 'merges' list")
    merges: list[tuple[str, str]] = []
    for i, merge in enumerate(raw):
        pair = merge.split(" ") if isinstance(merge, str) else merge  # tokenizers < 0.20 wrote "a b"
        if not isinstance(pair, list) or len(pair) != 2 or not all(isinstance(t, str) for t in pair):
            raise ValueError(f"{source}: merge #{i} is {merge!r}, not a pair of tokens")
        merges.append((pair[0], pair[1]))
    added = state.get("added_tokens") or []
    return vocab, merges, [a for a in added if isinstance(a, dict)]


def _read_tokenizer_json(file: Path) -> tuple[dict[str, int], list[tuple[str, str]], list[dict[str, Any]]]:
    return _model_state(read_json(file), str(file))


def _read_vocab_json(file: Path) -> dict[str, int]:
    if not file.is_file():
        raise FileNotFoundError(
            f"{file} is missing: a BPE vocabulary needs {VOCAB_FILE} beside {MERGES_FILE}"
        )
    vocab = read_json(file)
    if not isinstance(vocab, dict) or not vocab:
        raise ValueError(f"{file}: expected a non-empty JSON object mapping tokens to ids")
    bad = [(t, i) for t, i in vocab.items() if isinstance(i, bool) or not isinstance(i, int) or i < 0]
    if bad:
        raise ValueError(f"{file}: ids must be non-negative integers; got {bad[:3]}")
    return vocab


def _read_merges_txt(file: Path) -> list[tuple[str, str]]:
    if not file.is_file():
        raise FileNotFoundError(
            f"{file} is missing: a BPE vocabulary needs {MERGES_FILE} beside {VOCAB_FILE}"
        )
    merges: list[tuple[str, str]] = []
    with open(file, encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            line = line.rstrip("\r\n")
            if not line or (number == 1 and line.startswith("#version")):
                continue
            parts = line.split(" ")
            if len(parts) != 2 or not all(parts):
                raise ValueError(
                    f"{file}, line {number}: expected two tokens separated by a space, got {line!r}"
                )
            merges.append((parts[0], parts[1]))
    return merges
