"""Dependency trees from CoNLL-U files, and the tree metrics structural probes are trained against.

CoNLL-U (https://universaldependencies.org/format.html): one word a line in 10 tab-separated columns (ID,
FORM, LEMMA, UPOS, XPOS, FEATS, HEAD, DEPREL, DEPS, MISC), comment lines starting with `#`, a blank line
after each sentence. Multiword-token lines (`3-4`) and empty nodes (`5.1`) are skipped: a probe reads one
vector per syntactic word, and the basic tree (HEAD) never points at either.

Heads are 1-based with 0 for the root, as in the file. Every tree is checked on reading and on writing, so
code further on (distances, depths, the probes) may assume exactly one root and no cycle.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..data.sources import describe_odd_path
from ..errors import DataError
from ..utils.io import atomic_write, translate_os_errors

__all__ = ["Sentence", "check_heads", "parse_conllu", "read_conllu", "tree_depths", "tree_distances",
           "write_conllu"]

_COLUMNS = 10


@dataclass
class Sentence:
    """One sentence's words and basic dependency tree, with where it came from for error messages."""

    words: list[str]
    #: 1-based head of each word, 0 for the root word
    heads: list[int]
    upos: list[str] = field(default_factory=list)
    xpos: list[str] = field(default_factory=list)
    relations: list[str] = field(default_factory=list)
    #: the file it was read from ("" when built in code)
    source: str = ""
    #: the line of the sentence's first line (comment or word) in `source`, 1-based; 0 when built in code
    line: int = 0

    def __post_init__(self) -> None:
        n = len(self.words)
        for name in ("upos", "xpos", "relations"):
            values = getattr(self, name)
            if not values:
                setattr(self, name, ["_"] * n)
            elif len(values) != n:
                raise DataError(f"{self.where}{name} has {len(values)} entries for {n} words")
        if len(self.heads) != n:
            raise DataError(f"{self.where}{len(self.heads)} heads for {n} words")

    def __len__(self) -> int:
        return len(self.words)

    @property
    def where(self) -> str:
        """`file:line: ` for messages, or "" for a sentence built in code."""
        if not self.source:
            return ""
        return f"{self.source}:{self.line}: " if self.line else f"{self.source}: "

    @property
    def root(self) -> int:
        """0-based index of the root word."""
        return self.heads.index(0)

    @property
    def edges(self) -> list[tuple[int, int]]:
        """The tree's word-word edges as 0-based (dependent, head) pairs; the root's edge to ROOT is left out."""
        return [(i, h - 1) for i, h in enumerate(self.heads) if h != 0]


def check_heads(heads: Sequence[int], where: str = "", lines: Sequence[int] | None = None) -> None:
    """Raise a DataError unless `heads` (1-based, 0 = root) form one tree: heads in range, one root, no cycle.

    `where` prefixes the message (a file name); `lines`, when given, is the line of each word, so the message
    names the line at fault as `file:line`.
    """
    n = len(heads)

    def at(i: int | None) -> str:
        if lines is not None and i is not None and where:
            return f"{where}:{lines[i]}: "
        return f"{where}: " if where else ""

    for i, h in enumerate(heads):
        if isinstance(h, bool) or not isinstance(h, (int, np.integer)):
            raise DataError(f"{at(i)}head {h!r} of word {i + 1} is not an integer")
        if not 0 <= h <= n:
            raise DataError(f"{at(i)}head {h} of word {i + 1} is out of range: the sentence has {n} word"
                            f"{'s' if n != 1 else ''}, so heads must lie in 0..{n} (0 = root)")
        if h == i + 1:
            raise DataError(f"{at(i)}word {i + 1} is its own head (a cycle with no path to the root)")
    roots = [i for i, h in enumerate(heads) if h == 0]
    if not roots:
        raise DataError(f"{at(0 if n else None)}no root: no word has head 0 (exactly one must)")
    if len(roots) > 1:
        listed = ", ".join(str(i + 1) + (f" (line {lines[i]})" if lines is not None else "") for i in roots)
        raise DataError(f"{at(roots[1])}{len(roots)} roots: words {listed} all have head 0 (exactly one must)")
    # every word must reach the root; a walk that revisits a word has found a cycle
    reaches_root = [False] * n
    reaches_root[roots[0]] = True
    for start in range(n):
        path: list[int] = []
        seen: set[int] = set()
        i = start
        while not reaches_root[i]:
            if i in seen:
                cycle = path[path.index(i):]
                shown = " -> ".join(str(j + 1) for j in [*cycle, i])
                raise DataError(f"{at(min(cycle))}words {shown} form a cycle with no path to the root")
            seen.add(i)
            path.append(i)
            i = heads[i] - 1
        for j in path:
            reaches_root[j] = True


def _sentence(rows: list[tuple[int, list[str]]], source: str, first_line: int) -> Sentence:
    lines = [number for number, _ in rows]
    for k, (number, cols) in enumerate(rows, start=1):
        if cols[0] != str(k):
            raise DataError(f"{source}:{number}: word id {cols[0]!r} where {k} was expected (word ids must run "
                            f"1..n in order, one sentence after another with a blank line between)")
    heads: list[int] = []
    for number, cols in rows:
        try:
            heads.append(int(cols[6]))
        except ValueError:
            raise DataError(f"{source}:{number}: head {cols[6]!r} of word {cols[0]} is not an integer") from None
    check_heads(heads, source, lines)
    return Sentence(words=[c[1] for _, c in rows], heads=heads, upos=[c[3] for _, c in rows],
                    xpos=[c[4] for _, c in rows], relations=[c[7] for _, c in rows], source=source,
                    line=first_line)


def parse_conllu(lines: Iterable[str], source: str = "<text>") -> list[Sentence]:
    """The sentences of CoNLL-U text given as lines; `source` names it in errors."""
    sentences: list[Sentence] = []
    rows: list[tuple[int, list[str]]] = []
    first_line = 0
    for number, raw in enumerate(lines, start=1):
        line = raw.rstrip("\r\n")
        if not line.strip():
            if rows:
                sentences.append(_sentence(rows, source, first_line))
            rows, first_line = [], 0
            continue
        if first_line == 0:
            first_line = number
        if line.startswith("#"):
            continue
        cols = line.split("\t")
        if len(cols) != _COLUMNS:
            hint = " (columns must be separated by tabs, not spaces)" if len(cols) == 1 and " " in line else ""
            raise DataError(f"{source}:{number}: expected {_COLUMNS} tab-separated columns, got {len(cols)}{hint}")
        if "-" in cols[0] or "." in cols[0]:
            continue  # a multiword token or an empty node: not part of the basic tree
        rows.append((number, cols))
    if rows:
        sentences.append(_sentence(rows, source, first_line))
    return sentences


def read_conllu(path: str | os.PathLike) -> list[Sentence]:
    """The sentences of a CoNLL-U file, each tree checked; a bad line is a DataError naming file and line."""
    path = Path(path)
    odd = describe_odd_path(path)  # a FIFO would block the read forever, /dev/zero never end it
    if odd:
        raise DataError(f"{path} {odd}")
    with translate_os_errors(path, "read"):
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError as exc:
            line = path.read_bytes()[: exc.start].count(b"\n") + 1
            raise DataError(f"{path}:{line}: not UTF-8 text ({exc.reason})") from None
        except FileNotFoundError:
            raise DataError(f"{path}: no such CoNLL-U file") from None
    return parse_conllu(text.split("\n"), str(path))  # not splitlines(): U+2028 may sit inside a word


def _cell(value: str, what: str, where: str) -> str:
    if any(c in value for c in "\t\n\r"):
        raise DataError(f"{where}{what} {value!r} holds a tab or a line break, which CoNLL-U cannot store")
    return value if value else "_"


def write_conllu(sentences: Iterable[Sentence], path: str | os.PathLike) -> None:
    """Write sentences as CoNLL-U (LEMMA, FEATS, DEPS and MISC as `_`), e.g. silver trees from a parser.

    Each tree is checked first, so the file always reads back; the file is replaced only once complete.
    """
    blocks: list[str] = []
    for k, s in enumerate(sentences, start=1):
        where = s.where or f"sentence {k}: "
        check_heads(s.heads, where.rstrip(": "))
        lines = [f"# text = {' '.join(s.words)}"] if not any("\n" in w or "\r" in w for w in s.words) else []
        for i in range(len(s)):
            cols = [str(i + 1), _cell(s.words[i], "word", where), "_", _cell(s.upos[i], "UPOS", where),
                    _cell(s.xpos[i], "XPOS", where), "_", str(int(s.heads[i])),
                    _cell(s.relations[i], "relation", where), "_", "_"]
            lines.append("\t".join(cols))
        blocks.append("\n".join(lines) + "\n\n")
    with atomic_write(path) as handle:
        handle.write("".join(blocks))


def _adjacency(heads: Sequence[int]) -> list[list[int]]:
    check_heads(heads)
    neighbours: list[list[int]] = [[] for _ in heads]
    for i, h in enumerate(heads):
        if h:
            neighbours[i].append(h - 1)
            neighbours[h - 1].append(i)
    return neighbours


def _bfs(neighbours: list[list[int]], start: int) -> np.ndarray:
    dist = np.full(len(neighbours), -1, dtype=np.int64)
    dist[start] = 0
    queue = deque([start])
    while queue:
        i = queue.popleft()
        for j in neighbours[i]:
            if dist[j] < 0:
                dist[j] = dist[i] + 1
                queue.append(j)
    return dist


def tree_distances(heads: Sequence[int]) -> np.ndarray:
    """(n, n) path lengths between words in the undirected tree: the distance probe's gold targets."""
    neighbours = _adjacency(heads)
    n = len(heads)
    out = np.zeros((n, n), dtype=np.int64)
    for i in range(n):
        out[i] = _bfs(neighbours, i)
    return out


def tree_depths(heads: Sequence[int]) -> np.ndarray:
    """(n,) edges from each word up to the root word (the root word has depth 0): the depth probe's targets."""
    neighbours = _adjacency(heads)
    return _bfs(neighbours, list(heads).index(0))
