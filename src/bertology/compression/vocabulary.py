"""Vocabulary pruning: keep only the tokens a model's data uses.

A small English encoder keeps most of its parameters in the token embeddings (all-MiniLM-L6-v2: 11.7M of
22.7M; a 4 x 128 student: 83%), yet a task reads a few thousand of its 30,522 WordPiece tokens. Dropping
the rest shrinks the model without changing what it computes on that data: WordPiece picks the longest
vocabulary entry that prefixes the rest of a word, so removing entries it never picked on the data leaves
the data's tokenization as it was. Other text tokenizes with the kept pieces (a word whose piece is gone
falls back to shorter ones); `spellable` keeps every printable ASCII character, word-initial and
continuation, so an English word never becomes [UNK].

`kept_tokens` chooses, `prune_encoder` and `prune_tokenizer` cut, `id_map` translates a full vocabulary's
ids into the pruned one's (distillation feeds a pruned student the teacher's token ids).
"""

from __future__ import annotations

import string
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..errors import ConfigError

#: word-initial and continuation forms of these characters stay when `spellable`
_ASCII = [c for c in string.printable if not c.isspace()]


def token_counts(sequences: Iterable[Sequence[int]], vocab_size: int) -> torch.Tensor:
    """How often each id occurs in `sequences` (lists or tensors of token ids)."""
    counts = torch.zeros(vocab_size, dtype=torch.long)
    for ids in sequences:
        ids = torch.as_tensor(ids, dtype=torch.long).flatten()
        if ids.numel():
            counts += torch.bincount(ids, minlength=vocab_size)[:vocab_size]
    return counts


def kept_tokens(counts: torch.Tensor, tokenizer: Any, max_size: int | None = None, spellable: bool = True,
                where: str = "") -> list[int]:
    """Ids to keep, ascending: the special tokens, the ASCII characters when `spellable`, then the data's
    tokens by falling frequency (ties by id) up to `max_size` in all (None: every token the data uses)."""
    vocab = tokenizer.vocab
    always = set(tokenizer.special_token_ids)
    if spellable:
        always |= {vocab[t] for c in _ASCII for t in (c, f"##{c}") if t in vocab}
    if max_size is not None and max_size < len(always):
        raise ConfigError(f"{where}a vocabulary of {max_size} tokens cannot hold the {len(always)} special and character "
                          "tokens that stay; raise the size")
    used = [int(i) for i in torch.nonzero(counts > 0).flatten() if int(i) not in always]
    used.sort(key=lambda i: (-int(counts[i]), i))
    if max_size is not None:
        used = used[: max_size - len(always)]
    return sorted(always | set(used))


def _check_prunable(model: nn.Module) -> nn.Embedding:
    if getattr(model.config, "coarse_vocab_size", 0):
        raise ConfigError(f"{type(model).__name__} (AMBERT) reads two vocabularies: pruning supports one")
    word = getattr(getattr(model, "embeddings", None), "word", None)
    if not isinstance(word, nn.Embedding):
        raise ConfigError(f"{type(model).__name__} has no embeddings.word table to prune")
    if hasattr(model.embeddings, "glyph") or hasattr(model.embeddings, "pinyin"):
        raise ConfigError(f"{type(model).__name__} (ChineseBERT) reads glyphs and pinyin by token id: its "
                          "vocabulary cannot be pruned")
    return word


def prune_encoder(model: nn.Module, keep: Sequence[int]) -> nn.Module:
    """A copy of the encoder `model` whose token embeddings hold only the rows `keep` (ascending ids of the
    old vocabulary; new id = position in `keep`). Every other weight is the model's own."""
    _check_prunable(model)
    keep = list(keep)
    if sorted(set(keep)) != keep or not keep or keep[0] < 0 or keep[-1] >= model.config.vocab_size:
        raise ConfigError(f"kept ids must be ascending, distinct and below {model.config.vocab_size}")
    position = {old: new for new, old in enumerate(keep)}
    pad = model.config.pad_token_id
    if pad is not None and pad not in position:
        raise ConfigError(f"the pruned vocabulary must keep the padding token (id {pad})")
    config = model.config.replace(vocab_size=len(keep), pad_token_id=position.get(pad, pad))
    pruned = type(model)(config)
    index = torch.tensor(keep)
    state = dict(model.state_dict())
    state["embeddings.word.weight"] = state["embeddings.word.weight"][index].clone()
    pruned.load_state_dict(state)
    return pruned


def prune_tokenizer(tokenizer: Any, keep: Sequence[int], where: str = "") -> Any:
    """A WordPiece tokenizer with only the tokens `keep`, in the same order, and the same settings."""
    from ..tokenization.wordpiece import WordPieceTokenizer

    if type(tokenizer) is not WordPieceTokenizer:
        raise ConfigError(f"{where}vocabulary pruning supports WordPiece tokenizers, not {type(tokenizer).__name__} "
                          "(a byte-level BPE needs its merges kept consistent)")
    inverse = {i: t for t, i in tokenizer.vocab.items()}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        tokenizer.save_pretrained(folder)
        (folder / "tokenizer.json").unlink()  # rebuilt from vocab.txt with the saved settings
        (folder / "vocab.txt").write_text("".join(f"{inverse[i]}\n" for i in keep), encoding="utf-8")
        return WordPieceTokenizer.from_pretrained(folder)


def id_map(full: Any, pruned: Any, where: str = "") -> torch.Tensor:
    """For each id of the `full` tokenizer, the `pruned` one's id of the same token ([UNK]'s where pruned
    away). Refuses a `pruned` vocabulary that is not part of `full`."""
    full_vocab, small = full.vocab, pruned.vocab
    foreign = sorted(set(small) - set(full_vocab))
    if foreign:
        raise ConfigError(f"{where}the student's vocabulary has {len(foreign)} token(s) the teacher's lacks (e.g. "
                          f"{foreign[:5]}): a pruned student must keep a subset of its teacher's tokens")
    table = torch.full((max(full_vocab.values()) + 1,), pruned.unk_token_id, dtype=torch.long)
    for token, i in small.items():
        table[full_vocab[token]] = i
    return table


__all__ = ["id_map", "kept_tokens", "prune_encoder", "prune_tokenizer", "token_counts"]
