"""`Tokenizer`: the one entry point that loads whichever tokenizer a folder holds, as AutoTokenizer does.

Callers (fine-tuning, prediction, the CLI) get a folder and should not need to know whether it holds
WordPiece, byte-level BPE, ChineseBERT's WordPiece-with-pinyin or AMBERT's WordPiece-with-words; every
class shares :class:`~bertology.tokenization.base.BaseTokenizer`'s API, so `Tokenizer.from_pretrained(folder)`
returns the right one and the caller just uses it. :func:`save_for_model` is the other direction: it saves
into a model folder the tokenizer that folder's model reads, so every exported model folder holds its own.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from bertology.tokenization.ambert import AmbertTokenizer
from bertology.tokenization.base import CONFIG_FILE, TOKENIZER_FILE, BaseTokenizer, read_config, read_json
from bertology.tokenization.bpe import MERGES_FILE, ByteLevelBPETokenizer
from bertology.tokenization.bpe import VOCAB_FILE as BPE_VOCAB_FILE
from bertology.tokenization.chinesebert import CLASS_KEY, ChineseBertTokenizer
from bertology.tokenization.wordpiece import VOCAB_FILE as WORDPIECE_VOCAB_FILE
from bertology.tokenization.wordpiece import WordPieceTokenizer

__all__ = ["MODEL_TOKENIZERS", "Tokenizer", "load_tokenizer", "save_for_model", "tokenizer_class_for",
           "tokenizer_for_model"]

#: Our classes by name, for tokenizer_config.json's CLASS_KEY (and its tokenizer_class, if it names one).
CLASSES: dict[str, type[BaseTokenizer]] = {
    c.__name__: c for c in (WordPieceTokenizer, ByteLevelBPETokenizer, ChineseBertTokenizer, AmbertTokenizer)
}
# transformers' tokenizer_class names (without "Fast") whose pipeline each of our classes reproduces.
_BPE_CLASSES = {"RobertaTokenizer", "GPT2Tokenizer", "BartTokenizer", "LongformerTokenizer"}
_WORDPIECE_CLASSES = {"BertTokenizer", "DistilBertTokenizer", "ElectraTokenizer"}
_BY_MODEL_TYPE: dict[str, type[BaseTokenizer]] = {"BPE": ByteLevelBPETokenizer, "WordPiece": WordPieceTokenizer}
#: config.json model_types whose models need more than a WordPiece tokenizer gives (ChineseBERT: pinyin;
#: AMBERT: the coarse sequence), read as a plain string, as AutoTokenizer reads it: tokenization never
#: imports the models. Loading a plain WordPiece folder of such a model and exporting a run's tokenizer
#: beside such a model both look here, so the two always agree.
MODEL_TOKENIZERS: dict[str, type[WordPieceTokenizer]] = {
    "chinesebert": ChineseBertTokenizer,
    "ambert": AmbertTokenizer,
}
_MODEL_CONFIG_FILE = "config.json"


def tokenizer_class_for(path: str | os.PathLike) -> type[BaseTokenizer]:
    """The class that loads the tokenizer at `path` (a folder, or one of its files).

    Decided, first match wins, by tokenizer_config.json's bertology_class (written by our classes that
    transformers has no name for), its tokenizer_class, the model type of tokenizer.json, then the files
    present (vocab.json + merges.txt: byte-level BPE; vocab.txt: WordPiece). A WordPiece folder whose
    config.json is a ChineseBERT (AMBERT) model's gets the ChineseBERT (AMBERT) tokenizer, since that
    model needs pinyin (words).
    """
    path = Path(path)
    if path.is_dir():
        folder, file = path, None
    elif path.is_file():
        folder, file = path.parent, path
    else:
        raise FileNotFoundError(
            f"no tokenizer at {path}: expected a folder with {TOKENIZER_FILE}, {BPE_VOCAB_FILE} + {MERGES_FILE} "
            f"or {WORDPIECE_VOCAB_FILE}, or one of those files"
        )
    config = read_config(folder)
    named = config.get(CLASS_KEY)
    if named is not None:
        if named not in CLASSES:
            raise ValueError(f"{folder / CONFIG_FILE}: {CLASS_KEY} {named!r} is not one of {sorted(CLASSES)}")
        return CLASSES[named]
    found = _by_tokenizer_class(config, folder) or _by_files(folder, file)
    if found is WordPieceTokenizer:
        return MODEL_TOKENIZERS.get(_model_type(folder), found)
    return found


def _by_tokenizer_class(config: dict[str, Any], folder: Path) -> type[BaseTokenizer] | None:
    name = config.get("tokenizer_class")
    if name is None:
        return None
    base = str(name).removesuffix("Fast")
    if base in CLASSES:
        return CLASSES[base]
    if base in _BPE_CLASSES:
        return ByteLevelBPETokenizer
    if base in _WORDPIECE_CLASSES:
        return WordPieceTokenizer
    raise ValueError(
        f"{folder / CONFIG_FILE}: tokenizer_class {name!r} is neither byte-level BPE "
        f"({sorted(_BPE_CLASSES)}) nor WordPiece ({sorted(_WORDPIECE_CLASSES)})"
    )


def _by_files(folder: Path, file: Path | None) -> type[BaseTokenizer]:
    if file is not None and file.name in (BPE_VOCAB_FILE, MERGES_FILE):
        return ByteLevelBPETokenizer
    if file is not None and file.suffix != ".json":
        return WordPieceTokenizer  # vocab.txt or another one-token-a-line file
    state_file = file if file is not None else folder / TOKENIZER_FILE
    if state_file.is_file():
        state = read_json(state_file)
        model = state.get("model") if isinstance(state, dict) else None
        kind = model.get("type") if isinstance(model, dict) else None
        if kind in _BY_MODEL_TYPE:
            return _BY_MODEL_TYPE[kind]
        raise ValueError(f"{state_file}: model type {kind!r} is neither BPE nor WordPiece")
    if (folder / BPE_VOCAB_FILE).is_file() or (folder / MERGES_FILE).is_file():
        return ByteLevelBPETokenizer
    if (folder / WORDPIECE_VOCAB_FILE).is_file():
        return WordPieceTokenizer
    raise FileNotFoundError(
        f"{folder} holds no tokenizer: expected {TOKENIZER_FILE}, {BPE_VOCAB_FILE} + {MERGES_FILE}, "
        f"or {WORDPIECE_VOCAB_FILE}"
    )


def _model_type(folder: Path) -> str | None:
    path = folder / _MODEL_CONFIG_FILE
    if not path.is_file():
        return None
    try:
        config = read_json(path)
    except ValueError:
        return None  # a broken model config is the model loader's to report, not the tokenizer's
    value = config.get("model_type") if isinstance(config, dict) else None
    return value if isinstance(value, str) else None


def tokenizer_for_model(tokenizer: BaseTokenizer, model_folder: str | os.PathLike,
                        extras: str | os.PathLike | None = None) -> BaseTokenizer:
    """The tokenizer the model saved in `model_folder` reads, made from `tokenizer` (a run's WordPiece one).

    The model type in the folder's config.json decides, through MODEL_TOKENIZERS: ChineseBERT's adds
    pinyin, AMBERT's the coarse sequence, with the coarse vocabulary found in `extras` (the pretraining
    run's folder; default: the model folder). Any other model reads `tokenizer` as it is.
    """
    model_folder = Path(model_folder)
    cls = MODEL_TOKENIZERS.get(_model_type(model_folder))
    if cls is None or type(tokenizer) is cls or not isinstance(tokenizer, WordPieceTokenizer):
        return tokenizer
    return cls.for_model_folder(tokenizer, model_folder if extras is None else extras)


def save_for_model(tokenizer: BaseTokenizer, model_folder: str | os.PathLike,
                   extras: str | os.PathLike | None = None) -> BaseTokenizer:
    """Save into `model_folder` the tokenizer its model reads (see :func:`tokenizer_for_model`), so that
    the folder alone is enough to fine-tune and predict: `Tokenizer.from_pretrained(model_folder)` then
    gives that tokenizer back. Returns it."""
    out = tokenizer_for_model(tokenizer, model_folder, extras)
    out.save_pretrained(model_folder)
    return out


class _AutoMeta(type):
    # isinstance(tok, Tokenizer) held for WordPiece tokenizers while Tokenizer was their class; as the auto
    # class it stands for whatever from_pretrained may return, so it holds for every tokenizer here.
    def __instancecheck__(cls, instance: Any) -> bool:
        return isinstance(instance, BaseTokenizer)

    def __subclasscheck__(cls, subclass: type) -> bool:
        return isinstance(subclass, type) and issubclass(subclass, BaseTokenizer)


class Tokenizer(metaclass=_AutoMeta):
    """Loads any tokenizer here with the class that fits the folder (see :func:`tokenizer_class_for`).

    `Tokenizer.from_pretrained(folder)` gives a WordPieceTokenizer, ByteLevelBPETokenizer,
    ChineseBertTokenizer or AmbertTokenizer; `Tokenizer.train(...)` trains WordPiece, as it did when this name was the
    WordPiece class, and `Tokenizer(backend, ...)` likewise still builds a WordPieceTokenizer.
    """

    def __new__(cls, *args: Any, **kwargs: Any) -> WordPieceTokenizer:  # type: ignore[misc]
        return WordPieceTokenizer(*args, **kwargs)

    @staticmethod
    def from_pretrained(path: str | os.PathLike) -> BaseTokenizer:
        """Load the tokenizer saved at `path` (a folder or one of its files) with the class that fits it."""
        return tokenizer_class_for(path).from_pretrained(path)

    #: Train a new WordPiece vocabulary: :meth:`WordPieceTokenizer.train`, under its old name.
    train = WordPieceTokenizer.train


def load_tokenizer(folder: str | os.PathLike) -> BaseTokenizer:
    """`Tokenizer.from_pretrained`, under the name older callers use."""
    return Tokenizer.from_pretrained(folder)
