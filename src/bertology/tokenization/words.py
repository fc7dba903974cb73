"""Word starts: where a whole word begins in a sequence of tokens.

Whole-word masking and AMBERT's coarse tokens both read words from these marks. The corpus preparation
(data/prepare.py) records them for pretraining and :class:`~bertology.tokenization.ambert.AmbertTokenizer`
computes them from raw text at fine-tuning and prediction time; both call the functions here, so the two
agree by construction: a token starts a word where the pre-tokenizer's word changes (a WordPiece token
without the "##" prefix), and, with jieba, a token of one CJK character starts a word only where a jieba
word starts.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from bertology.errors import BertologyError
from bertology.tokenization.pinyin import has_cjk

__all__ = ["JiebaWordBegins", "cjk_token_table", "jieba_word_begins", "continuation_table", "load_jieba", "mark_jieba_starts", "unk_id",
           "word_id_starts"]

#: The CJK ideograph blocks of `has_cjk`, as code point ranges (for unknown tokens, read from the text).
CJK_RANGES = ((0x3400, 0x4DBF), (0x4E00, 0x9FFF), (0xF900, 0xFAFF), (0x20000, 0x2A6DF), (0x2A700, 0x2EBEF),
              (0x30000, 0x3134F))

#: jieba.lcut: text -> its words (what `load_jieba().lcut` is)
Cut = Callable[..., list[str]]


def is_cjk_point(points: np.ndarray) -> np.ndarray:
    """Which code points are CJK ideographs (vectorised `has_cjk` of one character)."""
    mask = np.zeros(points.shape, dtype=bool)
    for lo, hi in CJK_RANGES:
        mask |= (points >= lo) & (points <= hi)
    return mask


def continuation_table(backend: Any) -> np.ndarray | None:
    """id -> continues a word, for a WordPiece backend with a "##"-style prefix (None for other models).

    With WordPiece a token continues a word exactly when it carries the prefix (a word it cannot spell
    becomes one [UNK]), so word starts follow from the ids alone, without word ids or offsets.
    """
    prefix = getattr(backend.model, "continuing_subword_prefix", None)
    if type(backend.model).__name__ != "WordPiece" or not prefix:
        return None
    vocab = backend.get_vocab(with_added_tokens=True)
    table = np.zeros(max(vocab.values()) + 1, dtype=bool)
    for token, token_id in vocab.items():
        if token.startswith(prefix) and len(token) > len(prefix):
            table[token_id] = True
    return table


def word_id_starts(word_ids: np.ndarray) -> np.ndarray:
    """Starts (uint8) where the pre-tokenizer's word id changes; a negative id (an added token, whose word
    id is None) stands alone. For models whose ids do not tell a continuation (byte-level BPE)."""
    starts = np.ones(len(word_ids), dtype=np.uint8)
    if len(word_ids) > 1:
        starts[1:] = word_ids[1:] != word_ids[:-1]
    starts[word_ids < 0] = 1
    return starts


def cjk_token_table(backend: Any) -> np.ndarray:
    """id -> is one CJK character (BERT gives each its own token), so no per-character scan is needed."""
    vocab = backend.get_vocab(with_added_tokens=True)
    table = np.zeros(max(vocab.values()) + 1, dtype=bool)
    for token, token_id in vocab.items():
        if len(token) == 1 and has_cjk(token):
            table[token_id] = True
    return table


def unk_id(backend: Any) -> int | None:
    """The backend's unknown-token id: an unknown CJK character is still a character token."""
    return backend.token_to_id(getattr(backend.model, "unk_token", "[UNK]") or "[UNK]")


def load_jieba() -> Any:
    """jieba, imported on first use (loading its dictionary takes a second; English never needs it)."""
    import logging

    try:
        import jieba
    except ImportError:
        raise BertologyError("Chinese word starts need jieba, which is not installed: pip install "
                             "'bertology[data]' (or prepare with --chinese-words none)") from None
    jieba.setLogLevel(logging.WARNING)
    jieba.initialize()
    return jieba


def mark_jieba_starts(text: str, ids: np.ndarray, offsets: np.ndarray, starts: np.ndarray,
                      cjk_tokens: np.ndarray, unk: int | None, cut: Cut) -> None:
    """In place: a token of one CJK character of `text` starts a word only where a jieba word starts
    (Chinese whole-word masking); other tokens keep their marks.

    `ids`, `offsets` ((n, 2) character spans in `text`) and `starts` (a writable view) are the text's
    tokens, without special tokens. jieba cuts within runs of Han characters, letters and digits, which
    never span a sentence boundary, so cutting a whole text gives what cutting its sentences gives.
    """
    n = len(ids)
    if n == 0 or not has_cjk(text):
        return
    is_cjk = cjk_tokens[ids]
    first = offsets[:, 0]
    unknown = np.flatnonzero(ids == unk)
    if len(unknown):
        points = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)
        one_char = offsets[unknown, 1] - first[unknown] == 1
        is_cjk[unknown] = one_char & is_cjk_point(points[np.minimum(first[unknown], len(text) - 1)])
    word_begin = np.zeros(len(text) + 1, dtype=bool)
    lengths = np.fromiter(map(len, cut(text, HMM=True)), dtype=np.int64)
    word_begin[np.cumsum(lengths) - lengths] = True
    starts[is_cjk] = word_begin[first[is_cjk]]


class JiebaWordBegins:
    """Where jieba's words begin in a text: exactly what ``jieba.cut(text)`` (accurate mode, HMM on) gives,
    computed with numpy over a whole batch of text at once.

    jieba's own cut walks every character in Python (dictionary DAG, then a right-to-left best route), which
    made it most of the cost of preparing a Chinese corpus. Here the dictionary (prefix-closed, as jieba
    builds it) becomes a trie of sorted (node, character) keys, so every position's dictionary words are
    found for all positions at once; the route is solved for all Han blocks together, one position from the
    end per step, with the same float operations and tie-break as jieba (``max`` over (score, end)), and
    only the runs of single characters that jieba hands to its HMM go through jieba itself (cached).
    """

    _SHIFT = 21  # code points fit in 21 bits

    def __init__(self, jieba: Any) -> None:
        tokenizer = jieba.dt
        tokenizer.check_initialized()
        self._freq = tokenizer.FREQ
        self.size = len(self._freq)
        self._re_han = jieba.re_han_default
        self._hmm_cut = jieba.finalseg.cut
        self._hmm_cache: dict[str, np.ndarray] = {}
        self.logtotal = math.log(tokenizer.total)
        # comprehensions rather than one loop: this runs over half a million keys
        words = list(self._freq)
        node = {key: i for i, key in enumerate(words, 1)}
        node[""] = 0
        parents = [node.get(key[:-1], -1) for key in words]
        if -1 in parents:
            # jieba's DAG extends a fragment only while it is in FREQ: drop keys no chain of prefixes reaches
            reachable = {""}
            for key in sorted(words, key=len):
                if key[:-1] in reachable:
                    reachable.add(key)
            parents = [p if key in reachable else -(1 << 40) for key, p in zip(words, parents, strict=True)]
        chars = [ord(key[-1]) for key in words]
        log, logtotal = math.log, self.logtotal
        weights = [math.nan] + [log(f) - logtotal if f else math.nan for f in map(self._freq.__getitem__, words)]
        keys = (np.asarray(parents, dtype=np.int64) << self._SHIFT) | np.asarray(chars, dtype=np.int64)
        order = np.argsort(keys, kind="stable")
        self._keys = keys[order]
        self._children = (order + 1).astype(np.int64)
        self._weights = np.asarray(weights, dtype=np.float64)

    def _hmm_begins(self, buf: str) -> np.ndarray:
        cached = self._hmm_cache.get(buf)
        if cached is None:
            if len(self._hmm_cache) > 200_000:
                self._hmm_cache.clear()
            lengths = np.fromiter(map(len, self._hmm_cut(buf)), dtype=np.int64)
            cached = self._hmm_cache[buf] = np.cumsum(lengths) - lengths
        return cached

    def __call__(self, text: str) -> np.ndarray:
        """Bool per character of `text` (plus one past the end): True where a jieba word begins."""
        begins = np.ones(len(text) + 1, dtype=bool)
        spans = np.array([m.span() for m in self._re_han.finditer(text)], dtype=np.int64).reshape(-1, 2)
        if not len(spans):
            return begins
        points = np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype=np.uint32).astype(np.int64)
        lengths = spans[:, 1] - spans[:, 0]
        nb, total = len(spans), int(lengths.sum())
        block_of = np.repeat(np.arange(nb), lengths)
        row_start = np.cumsum(lengths) - lengths  # each block's first row (rows: Han-block characters)
        pos = spans[block_of, 0] + np.arange(total) - row_start[block_of]  # text position of each row
        left = (spans[block_of, 1] - pos)  # characters from the row to its block's end

        # Dictionary words starting at each row: walk the trie for all rows at once, one length per step.
        word_weights: list[np.ndarray] = []
        active = np.arange(total)
        nodes = np.zeros(total, dtype=np.int64)
        length = 0
        while len(active):
            length += 1
            active = active[left[active] >= length]
            key = (nodes[active] << self._SHIFT) | points[pos[active] + length - 1]
            at = np.minimum(np.searchsorted(self._keys, key), len(self._keys) - 1)
            found = self._keys[at] == key
            active = active[found]
            nodes[active] = self._children[at[found]]
            column = np.full(total, -np.inf)
            w = self._weights[nodes[active]]
            words = ~np.isnan(w)
            column[active[words]] = w[words]
            word_weights.append(column)
        weights = np.stack(word_weights[:max(length - 1, 1)], axis=1)
        max_len = weights.shape[1]
        lonely = ~np.isfinite(weights).any(axis=1)
        weights[lonely, 0] = 0.0 - self.logtotal  # jieba: log(FREQ.get(char) or 1) - logtotal

        # Best route, right to left, all blocks together; a padding slot after each block holds route 0.
        route = np.zeros(total + nb + max_len + 1)
        step_len = np.ones(total, dtype=np.int64)
        padded_start = row_start + np.arange(nb)
        by_length = np.argsort(-lengths, kind="stable")
        sorted_lengths = lengths[by_length]
        span = np.arange(1, max_len + 1)
        for t in range(int(sorted_lengths[0])):
            blocks = by_length[:int(np.searchsorted(-sorted_lengths, -t, side="left"))]
            rows = row_start[blocks] + lengths[blocks] - 1 - t
            slots = padded_start[blocks] + lengths[blocks] - 1 - t
            values = weights[rows] + route[slots[:, None] + span]
            # jieba's max over (score, end): the longest word wins a tie
            best = max_len - 1 - np.argmax(values[:, ::-1], axis=1)
            route[slots] = values[np.arange(len(rows)), best]
            step_len[rows] = best + 1

        # Follow the route from each block's start.
        on_route = np.zeros(total, dtype=bool)
        at = row_start.copy()
        ends = row_start + lengths
        while len(at):
            on_route[at] = True
            at = at + step_len[at]
            keep = at < ends
            at, ends = at[keep], ends[keep]

        # Runs of single-character words: jieba keeps them as characters if the run is a dictionary word, else
        # its HMM segments the run.
        single = on_route & (step_len == 1)
        new_block = np.zeros(total, dtype=bool)
        new_block[row_start] = True
        edges = np.diff(np.concatenate(([0], single.view(np.int8), [0])))
        run_starts = np.flatnonzero(edges == 1)
        run_ends = np.flatnonzero(edges == -1)
        # a run never crosses a block: cut runs at block starts
        cuts = np.flatnonzero(new_block & single & ~np.concatenate(([True], ~single[:-1])))
        if len(cuts):
            run_starts = np.sort(np.concatenate((run_starts, cuts)))
            run_ends = np.sort(np.concatenate((run_ends, cuts)))
        marks = on_route
        freq = self._freq
        for a, b in zip(run_starts.tolist(), run_ends.tolist(), strict=True):
            if b - a < 2:
                continue
            p = int(pos[a])
            buf = text[p:p + b - a]
            if not freq.get(buf):
                marks[a:b] = False
                marks[a + self._hmm_begins(buf)] = True
        begins[pos] = marks
        return begins


_WORD_BEGINS: tuple[Any, JiebaWordBegins] | None = None


def jieba_word_begins(jieba: Any) -> JiebaWordBegins:
    """The process's :class:`JiebaWordBegins` for jieba's current dictionary: building it takes a second or two,
    so it is built once (before forking, workers share it) and rebuilt only if the dictionary changes."""
    global _WORD_BEGINS
    jieba.dt.check_initialized()
    freq = jieba.dt.FREQ
    if _WORD_BEGINS is None or _WORD_BEGINS[0] is not freq or _WORD_BEGINS[1].size != len(freq):
        _WORD_BEGINS = (freq, JiebaWordBegins(jieba))
    return _WORD_BEGINS[1]
