"""Input formats: how sentences of a prepared corpus become training sequences.

The four formats the RoBERTa study compares, plus the sentence-pair tasks that go with them:
- segment_pair: two segments of several sentences each ([CLS] A [SEP] B [SEP]), BERT's original input;
- sentence_pair: two single sentences;
- full_sentences: contiguous sentences packed up to the length limit, crossing document ends ([SEP] between);
- doc_sentences: the same, but never crossing a document end;
- parallel: one sentence pair of a parallel corpus (`--input-format parallel`) per instance, [CLS] source
  [SEP] target [SEP], with the language as the token type (see `PretrainingDataset._parallel_item`).
Pair formats carry a sentence label for one task: nsp (is B the continuation?), sop (are A and B in
order?), order (B follows / precedes / comes from another document) or distance (B is adjacent / in the same
document but not adjacent / from another document).

Every plan (which token ranges make up instance i) is fixed once from the seed, so instance i is the same
in every epoch and on every process; the masks applied later may change per epoch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from ..errors import ConfigError
from ..utils.typed import Where, as_where, check_choice, check_fields

if TYPE_CHECKING:
    from .shards import TokenCorpus

FORMATS = ("segment_pair", "sentence_pair", "full_sentences", "doc_sentences", "parallel")
PAIR_TASKS = {"nsp": 2, "sop": 2, "order": 3, "distance": 3}

Piece = tuple[int, int, int]  # (global sentence, first token, end token)


@dataclass
class FormatConfig:
    format: str = "full_sentences"
    max_length: int = 128
    #: chance that an instance aims at a shorter random length (BERT: 0.1), so short inputs are seen too
    short_seq_prob: float = 0.1
    #: share of documents held out for evaluation
    eval_fraction: float = 0.01
    #: sentence-pair task for pair formats; chosen from the objectives, not set by hand
    pair_task: str | None = None

    def __post_init__(self) -> None:
        self.validate()

    def validate(self, where: str | Where = "") -> None:
        """Raise ConfigError naming the first field with a wrong type or an impossible value."""
        where = as_where(where)
        check_fields(self, where)
        check_choice(where, "format", self.format, FORMATS)
        if self.max_length < 8:
            raise ConfigError(f"{where}field 'max_length' must be at least 8, got {self.max_length}")
        if not 0 <= self.short_seq_prob <= 1:
            raise ConfigError(f"{where}field 'short_seq_prob' must lie in [0, 1], got {self.short_seq_prob}")
        if not 0 <= self.eval_fraction < 1:
            raise ConfigError(f"{where}field 'eval_fraction' must lie in [0, 1), got {self.eval_fraction}")
        if self.pair_task is not None:
            check_choice(where, "pair_task", self.pair_task, PAIR_TASKS)
        pair_format = self.format in ("segment_pair", "sentence_pair")
        if self.pair_task and not pair_format:
            raise ConfigError(f"{where}the sentence task '{self.pair_task}' needs a pair format (segment_pair or "
                              f"sentence_pair), not '{self.format}'")


def split_documents(num_documents: int, eval_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Train and eval document ids: a seeded random share of whole documents is held out."""
    order = np.random.default_rng([seed, 7919]).permutation(num_documents)
    n_eval = int(round(eval_fraction * num_documents))
    if eval_fraction > 0 and num_documents > 1:
        n_eval = max(1, n_eval)
    return np.sort(order[n_eval:]), np.sort(order[:n_eval])


@dataclass
class Specials:
    cls: int
    sep: int
    pad: int


class PretrainingDataset:
    """Instances of one format over a set of documents of a prepared corpus (map-style, deterministic)."""

    def __init__(self, corpus: TokenCorpus, config: FormatConfig, specials: Specials, documents: np.ndarray,
                 seed: int = 0) -> None:
        self.corpus = corpus
        self.config = config
        self.specials = specials
        self.documents = np.asarray(documents, dtype=np.int64)
        self.seed = seed
        self.lengths = corpus.sentence_lengths()
        pairs = config.format in ("segment_pair", "sentence_pair")
        if pairs and config.pair_task is None:
            raise ConfigError(f"format '{config.format}' needs a sentence-pair objective (nsp, sop, order, distance)")
        if config.format == "parallel":
            self.plans: list[tuple] = self._parallel_plans()
        else:
            self.plans = self._pair_plans() if pairs else self._packed_plans()
        if not self.plans:
            raise ValueError("no training instances: the documents hold no sentences")

    def __len__(self) -> int:
        return len(self.plans)

    # ---------------------------------------------------------------------------------- plans
    def _target(self, rng: np.random.Generator, budget: int) -> int:
        if rng.random() < self.config.short_seq_prob:
            return int(rng.integers(2, budget + 1))
        return budget

    def _packed_plans(self) -> list[tuple]:
        """full_sentences / doc_sentences: greedy packing of sentence pieces up to the budget."""
        budget = self.config.max_length - 2
        cross = self.config.format == "full_sentences"
        rng = np.random.default_rng([self.seed, 1])
        plans: list[tuple] = []
        current: list[Piece | None] = []  # None marks a document boundary ([SEP])
        used = 0
        target = self._target(rng, budget)
        for d in self.documents:
            if current and not cross:
                plans.append(tuple(current))
                current, used, target = [], 0, self._target(rng, budget)
            elif current and used + 1 <= target:
                current.append(None)
                used += 1
            for s in self.corpus.document_sentences(int(d)):
                length = int(self.lengths[s])
                start = 0
                while start < length:
                    room = target - used
                    if room <= 0:
                        plans.append(tuple(current))
                        current, used, target = [], 0, self._target(rng, budget)
                        room = target
                    take = min(room, length - start)
                    if take < length - start and start == 0 and used > 0:
                        # a sentence that does not fit starts the next instance rather than being cut
                        plans.append(tuple(current))
                        current, used, target = [], 0, self._target(rng, budget)
                        continue
                    current.append((s, start, start + take))
                    used += take
                    start += take
        if current and any(p is not None for p in current):
            plans.append(tuple(current))
        return [p for p in plans if any(x is not None for x in p)]

    def _pair_plans(self) -> list[tuple]:
        """segment_pair / sentence_pair: (A pieces, B pieces, label) per instance, as in BERT's data script."""
        budget = self.config.max_length - 3
        task = self.config.pair_task
        single = self.config.format == "sentence_pair"
        docs = [list(self.corpus.document_sentences(int(d))) for d in self.documents]
        docs = [d for d in docs if d]
        plans: list[tuple] = []
        for di, sentences in enumerate(docs):
            rng = np.random.default_rng([self.seed, 2, di])
            i = 0
            while i < len(sentences):
                if single:  # consecutive sentences two by two: A is one sentence, B the next one
                    chunk = sentences[i:i + 2]
                    i += 2
                else:
                    target = self._target(rng, budget)
                    chunk, used = [], 0
                    while i < len(sentences) and (not chunk or used < target):
                        chunk.append(sentences[i])
                        used += int(self.lengths[sentences[i]])
                        i += 1
                a_end = 1 if single or len(chunk) < 2 else int(rng.integers(1, len(chunk)))
                a, b = chunk[:a_end], chunk[a_end:]
                plan = self._pair_with_task(task, a, b, sentences, docs, di, rng)
                if plan is not None:
                    plans.append(plan)
        return plans

    def _parallel_plans(self) -> list[tuple]:
        """parallel: (source sentence, target sentence) of each document, a corpus prepared as sentence pairs."""
        if not (getattr(self.corpus, "meta", None) or {}).get("parallel"):
            raise ConfigError("format 'parallel' needs parallel text: prepare the corpus with --input-format parallel")
        plans = []
        for d in self.documents:
            sentences = self.corpus.document_sentences(int(d))
            if len(sentences) != 2:
                raise ConfigError(f"format 'parallel': document {int(d)} holds {len(sentences)} sentences, not a "
                                  "pair; prepare the corpus with --input-format parallel")
            plans.append((sentences[0], sentences[1]))
        return plans

    def _random_segment(self, docs: list[list[int]], di: int, rng: np.random.Generator, n: int) -> list[int] | None:
        if len(docs) < 2:
            return None
        other = int(rng.integers(0, len(docs) - 1))
        other += other >= di
        sentences = docs[other]
        start = int(rng.integers(0, len(sentences)))
        return sentences[start:start + max(1, n)]

    def _pair_with_task(self, task, a, b, sentences, docs, di, rng) -> tuple | None:
        """Choose B and the label for one task. Labels: nsp 0 = next, 1 = random (transformers' convention);
        sop 0 = in order, 1 = swapped; order 0 = B follows, 1 = B precedes, 2 = other document;
        distance 0 = adjacent, 1 = same document not adjacent, 2 = other document."""
        draw = rng.random()
        if task in ("nsp", "order", "distance") and (not b or draw < (0.5 if task == "nsp" else 1 / 3)):
            other = self._random_segment(docs, di, rng, len(b) or 1)
            if other is None:
                return None
            return (tuple(a), tuple(other), 1 if task == "nsp" else 2)
        if not b:
            return None
        if task == "nsp":
            return (tuple(a), tuple(b), 0)
        if task == "sop":
            return (tuple(b), tuple(a), 1) if draw < 0.5 else (tuple(a), tuple(b), 0)
        if task == "order":
            return (tuple(b), tuple(a), 1) if draw < 2 / 3 else (tuple(a), tuple(b), 0)
        # distance: adjacent, or a segment of the same document at least one sentence away
        if draw < 2 / 3:
            return (tuple(a), tuple(b), 0)
        first, last = sentences.index(a[0]), sentences.index(a[-1])
        sides = [side for side in (sentences[: max(0, first - 1)], sentences[last + 2:]) if side]
        if not sides:
            return (tuple(a), tuple(b), 0)
        side = sides[int(rng.integers(0, len(sides)))]
        start = int(rng.integers(0, len(side)))
        return (tuple(a), tuple(side[start:start + len(b)]), 1)

    # ---------------------------------------------------------------------------------- instances
    def _pieces(self, pieces) -> tuple:
        """Token ids, word starts, case labels (-100 at separators), pinyin ids and sentence starts of pieces,
        joined."""
        ids, starts, cases, pinyin, sentence_starts = [], [], [], [], []
        for piece in pieces:
            if piece is None:  # document boundary inside a packed instance
                ids.append(np.array([self.specials.sep], dtype=np.int64))
                starts.append(np.ones(1, dtype=bool))
                cases.append(np.full(1, -100, dtype=np.int64))
                pinyin.append(np.zeros((1, 8), dtype=np.int64))
                sentence_starts.append(np.zeros(1, dtype=bool))
                continue
            s, a, b = piece if isinstance(piece, tuple) else (piece, 0, int(self.lengths[piece]))
            ids.append(self.corpus.sentence(s)[a:b].astype(np.int64))
            ws = self.corpus.word_starts(s)[a:b].astype(bool)
            if ws.size:
                ws[0] = True  # a piece cut out of a sentence starts a word
            starts.append(ws)
            first = np.zeros(b - a, dtype=bool)
            if a == 0 and b > a:
                first[0] = True  # the piece begins a sentence (a sentence cut by the budget continues unmarked)
            sentence_starts.append(first)
            case = self.corpus.case(s) if self.has_case else None
            cases.append(None if case is None else case[a:b].astype(np.int64))
            if self.has_pinyin:
                pinyin.append(self.corpus.pinyin(s)[a:b])
        case_out = np.concatenate(cases) if self.has_case else None
        pinyin_out = np.concatenate(pinyin) if self.has_pinyin else None
        return np.concatenate(ids), np.concatenate(starts), case_out, pinyin_out, np.concatenate(sentence_starts)

    @property
    def has_case(self) -> bool:
        return self.corpus.num_sentences > 0 and self.corpus.case(0) is not None

    @property
    def has_pinyin(self) -> bool:
        return bool(getattr(self.corpus, "has_pinyin", False))

    def __getitem__(self, index: int) -> dict:
        if self.config.format == "parallel":
            return self._parallel_item(index)
        plan = self.plans[index]
        sp = self.specials
        label = None
        if self.config.format in ("segment_pair", "sentence_pair"):
            a_pieces, b_pieces, label = plan
            a, b = self._pieces(a_pieces), self._pieces(b_pieces)
            a, b = self._truncate_pair(a, b, np.random.default_rng([self.seed, 3, index]))
            body = [a, b]
            first_piece = a_pieces[0]
        else:
            n = self.config.max_length - 2
            body = [tuple(None if x is None else x[:n] for x in self._pieces(plan))]
            first_piece = next(p for p in plan if p is not None)
        ids_parts, ws_parts, case_parts, seg_parts = [np.array([sp.cls])], [np.ones(1, bool)], [[-100]], [[0]]
        pinyin_parts = [np.zeros((1, 8), dtype=np.int64)]
        sentence_parts = [np.zeros(1, bool)]
        for k, (ids, ws, case, pinyin, sentence_starts) in enumerate(body):
            ids_parts += [ids, np.array([sp.sep])]
            ws_parts += [ws, np.ones(1, bool)]
            case_parts += [case if case is not None else np.full(len(ids), -100), [-100]]
            seg_parts += [np.full(len(ids) + 1, k)]
            sentence_parts += [sentence_starts, np.zeros(1, bool)]
            if pinyin is not None:
                pinyin_parts += [pinyin, np.zeros((1, 8), dtype=np.int64)]
        input_ids = np.concatenate(ids_parts).astype(np.int64)
        special = np.isin(input_ids, [sp.cls, sp.sep, sp.pad])
        sentence = first_piece[0] if isinstance(first_piece, tuple) else first_piece
        item = {"index": index, "input_ids": input_ids,
                "token_type_ids": np.concatenate(seg_parts).astype(np.int64),
                "word_starts": np.concatenate(ws_parts) | special, "maskable": ~special,
                # where each sentence begins, and the document of the first one (for objectives that reorder
                # sentences or relate tokens to their document)
                "sentence_starts": np.concatenate(sentence_parts),
                "document": int(self.corpus.document_of_sentence(int(sentence)))}
        if label is not None:
            item["sentence_label"] = label
        if self.has_case:
            item["case_labels"] = np.concatenate(case_parts).astype(np.int64)
        if self.has_pinyin:
            item["pinyin_ids"] = np.concatenate(pinyin_parts).astype(np.int64)
        return item

    def _parallel_item(self, index: int) -> dict:
        """[CLS] source [SEP] target [SEP]: token type = language id, 0 for [CLS] and the source, 1 for the
        [SEP] that opens the target, the target and the last [SEP] (each language's part starts with its
        delimiter, as each sentence of XLM's TLM starts with </s>; the TLM objective restarts positions there).
        Longest-first truncation from the end, deterministic: the longer side loses its last token first."""
        source, target = (self._pieces([s]) for s in self.plans[index])
        budget = self.config.max_length - 3
        n_a, n_b = len(source[0]), len(target[0])
        while n_a + n_b > budget:
            if n_a >= n_b:
                n_a -= 1
            else:
                n_b -= 1
        (a_ids, a_ws, a_case, a_pinyin, a_ss), (b_ids, b_ws, b_case, b_pinyin, b_ss) = (
            tuple(None if x is None else x[:n] for x in part) for part, n in ((source, n_a), (target, n_b)))
        sp = self.specials
        one, no = np.ones(1, bool), np.zeros(1, bool)
        input_ids = np.concatenate([[sp.cls], a_ids, [sp.sep], b_ids, [sp.sep]]).astype(np.int64)
        special = np.isin(input_ids, [sp.cls, sp.sep, sp.pad])
        item = {"index": index, "input_ids": input_ids,
                "token_type_ids": np.concatenate([np.zeros(n_a + 1), np.ones(n_b + 2)]).astype(np.int64),
                "word_starts": np.concatenate([one, a_ws, one, b_ws, one]) | special, "maskable": ~special,
                "sentence_starts": np.concatenate([no, a_ss, no, b_ss, no]),
                "document": int(self.corpus.document_of_sentence(int(self.plans[index][0])))}
        if self.has_case:
            item["case_labels"] = np.concatenate([[-100], a_case, [-100], b_case, [-100]]).astype(np.int64)
        if self.has_pinyin:
            pad = np.zeros((1, 8), dtype=np.int64)
            item["pinyin_ids"] = np.concatenate([pad, a_pinyin, pad, b_pinyin, pad]).astype(np.int64)
        return item

    def _truncate_pair(self, a, b, rng):
        """Longest-first truncation, removing from the front or the back at random (as BERT does)."""
        budget = self.config.max_length - 3
        a_lo, a_hi, b_lo, b_hi = 0, len(a[0]), 0, len(b[0])
        while (a_hi - a_lo) + (b_hi - b_lo) > budget:
            if a_hi - a_lo >= b_hi - b_lo:
                if rng.random() < 0.5:
                    a_lo += 1
                else:
                    a_hi -= 1
            elif rng.random() < 0.5:
                b_lo += 1
            else:
                b_hi -= 1

        def cut(part, lo, hi):
            ids, ws, case, pinyin, sentence_starts = part
            ws = ws[lo:hi].copy()
            if ws.size:
                ws[0] = True
            return (ids[lo:hi], ws, None if case is None else case[lo:hi], None if pinyin is None else pinyin[lo:hi],
                    sentence_starts[lo:hi])

        return cut(a, a_lo, a_hi), cut(b, b_lo, b_hi)
