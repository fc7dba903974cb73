"""Property-based tests (hypothesis): the tokenizer, the maskers and the collator on arbitrary input, and the
file readers on arbitrary bytes, either work or fail with the project's own errors naming the file."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bertology.analysis.trees import read_conllu
from bertology.assets import minilm_dir
from bertology.data.collate import PretrainingCollator
from bertology.data.maskers import MASKERS, MaskingConfig
from bertology.errors import BertologyError
from bertology.finetuning.data import read_examples
from bertology.tokenization import Tokenizer

# no example database: nothing is written into the working tree
BOUNDED = settings(max_examples=50, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])

# Unicode text without surrogates (not text, and no file or JSON string read by the project can hold them),
# with the hard parts over-represented: control characters, combining marks, CJK, emoji, special-token strings.
ANY_CHAR = st.characters(blacklist_categories=("Cs",))
HARD = st.sampled_from(["\x00", "\x1b", "\t", "\r\n", "\u200b", "\u0301", "\u0308", "e\u0301", "中", "文字", "😀",
                        "👩‍👩‍👧", "🇫🇷", "\ufeff", "\u2028", "ＡＢＣ", "ﬁ", "İ", "ß", "[MASK]", "[SEP]", " ", "##"])
TEXT = st.one_of(st.text(ANY_CHAR, max_size=200),
                 st.lists(st.one_of(HARD, st.text(ANY_CHAR, max_size=5)), max_size=60).map("".join))


@pytest.fixture(scope="module")
def tok() -> Tokenizer:
    return Tokenizer.from_pretrained(minilm_dir())


def _check_encoding(tok: Tokenizer, text: str, max_length: int = 512) -> list[int]:
    enc = tok(text, max_length=max_length, padding=False, return_tensors=None, return_offsets_mapping=True,
              return_special_tokens_mask=True)
    ids, offsets, special = enc["input_ids"][0], enc["offset_mapping"][0], enc["special_tokens_mask"][0]
    assert 2 <= len(ids) <= max_length
    assert all(0 <= i < tok.vocab_size for i in ids)
    assert ids[0] == tok.cls_token_id and ids[-1] == tok.sep_token_id
    assert special[0] == 1 and special[-1] == 1 and not any(special[1:-1])
    # a special id inside the sequence only where the text spells that token out
    for i in ids[1:-1]:
        if i in tok.special_token_ids and i != tok.unk_token_id:
            assert tok.convert_ids_to_tokens(i) in text
    inner = offsets[1:-1]
    assert all(0 <= a <= b <= len(text) for a, b in inner)
    starts = [a for a, _ in inner]
    assert starts == sorted(starts)
    # pieces round-trip through the vocabulary
    assert tok.convert_tokens_to_ids(tok.convert_ids_to_tokens(ids)) == ids
    return ids


@BOUNDED
@given(text=TEXT)
def test_tokenizer_on_any_text(tok, text):
    _check_encoding(tok, text)


@BOUNDED
@given(piece=TEXT, repeat=st.integers(1, 400))
def test_tokenizer_on_huge_text_truncates(tok, piece, repeat):
    text = (piece or "x") * max(1, 20_000 // max(1, len(piece or "x")))
    text = text[:20_000] if len(text) > 20_000 else text
    ids = _check_encoding(tok, text, max_length=128)
    assert len(ids) <= 128


def test_tokenizer_on_empty_and_blank_text(tok):
    for text in ("", " ", "\n\t", "\u200b", "\x00"):
        assert _check_encoding(tok, text) in ([tok.cls_token_id, tok.sep_token_id],
                                              [tok.cls_token_id, tok.unk_token_id, tok.sep_token_id])


# ------------------------------------------------------------------------------------------------ maskers
SPECIAL = {0, 1, 2, 3, 4}  # pad, unk, cls, sep, mask
VOCAB = 60


def _masker(strategy: str, rate: float, mask_prob: float, random_prob: float, max_predictions: int | None):
    config = MaskingConfig(strategy=strategy, rate=rate, mask_prob=mask_prob, random_prob=random_prob,
                           max_predictions=max_predictions, lexicon="phrases.txt" if strategy == "entity" else None)
    lexicon = [[10, 11], [20, 21, 22], [30]] if strategy == "entity" else None
    return MASKERS.entry(strategy).obj(config, 4, 1, VOCAB, SPECIAL, lexicon)


SEQUENCE = st.integers(0, 64).flatmap(lambda n: st.tuples(
    st.lists(st.integers(0, VOCAB - 1), min_size=n, max_size=n),
    st.lists(st.booleans(), min_size=n, max_size=n),
    st.lists(st.booleans(), min_size=n, max_size=n)))


@BOUNDED
@given(strategy=st.sampled_from(["token", "whole_word", "span", "entity"]), seq=SEQUENCE,
       rate=st.floats(0.01, 1.0), mask_prob=st.floats(0.0, 1.0), random_share=st.floats(0.0, 1.0),
       max_predictions=st.one_of(st.none(), st.integers(1, 30)), seed=st.integers(0, 2**32 - 1))
def test_maskers_label_only_maskable_tokens_within_budget(strategy, seq, rate, mask_prob, random_share,
                                                          max_predictions, seed):
    masker = _masker(strategy, rate, mask_prob, (1.0 - mask_prob) * random_share, max_predictions)
    tokens, maskable, starts = (np.array(x) for x in seq)
    tokens = tokens.astype(np.int64)
    corrupted, labels = masker(tokens, maskable, starts, np.random.default_rng(seed))
    assert corrupted.shape == labels.shape == tokens.shape
    predicted = labels != -100
    allowed = maskable.astype(bool) & ~np.isin(tokens, list(SPECIAL))
    assert not (predicted & ~allowed).any()  # never a special token, never an unmaskable one
    assert (labels[predicted] == tokens[predicted]).all()
    assert (corrupted[~predicted] == tokens[~predicted]).all()  # only predicted positions change
    changed = predicted & (corrupted != tokens)
    assert not np.isin(corrupted[changed], list(SPECIAL - {4})).any()  # [MASK] or an ordinary token
    assert predicted.sum() <= masker.budget(int(allowed.sum()))
    again = masker(tokens, maskable, starts, np.random.default_rng(seed))
    assert (again[0] == corrupted).all() and (again[1] == labels).all()  # the generator decides everything


# ----------------------------------------------------------------------------------------------- collator
EXAMPLES = st.lists(st.integers(1, 40), min_size=1, max_size=6).map(
    lambda lengths: [{"input_ids": [5 + (i + j) % 50 for j in range(n)], "token_type_ids": [0] * n,
                      "maskable": [0 < j < n - 1 for j in range(n)], "word_starts": [True] * n, "index": i}
                     for i, n in enumerate(lengths)])


@BOUNDED
@given(examples=EXAMPLES, multiple=st.sampled_from([0, 1, 8]), seed=st.integers(0, 1000), epoch=st.integers(0, 3))
def test_collator_pads_and_masks_consistently(examples, multiple, seed, epoch):
    collate = PretrainingCollator(_masker("token", 0.3, 0.8, 0.1, None), 0, seed, pad_to_multiple_of=multiple)
    batch = collate(examples, epoch)
    lengths = [len(e["input_ids"]) for e in examples]
    rows, width = batch["input_ids"].shape
    assert rows == len(examples) and width >= max(lengths)
    if multiple:
        assert width % multiple == 0 and width - max(lengths) < multiple
    for key in ("token_type_ids", "attention_mask", "labels"):
        assert batch[key].shape == (rows, width)
    for r, n in enumerate(lengths):
        assert batch["attention_mask"][r].tolist() == [1] * n + [0] * (width - n)
        assert (batch["input_ids"][r, n:] == 0).all() and (batch["labels"][r, n:] == -100).all()
        labelled = batch["labels"][r, :n] != -100
        assert not labelled[0] and not labelled[n - 1]  # the unmaskable ends are never predicted
    again = collate(list(reversed(examples)), epoch)  # an instance's mask does not depend on its batch
    for r in range(rows):
        assert (again["labels"][rows - 1 - r] == batch["labels"][r]).all()


# ------------------------------------------------------------------------------------------- file readers
LINES = st.lists(st.one_of(st.binary(max_size=60), st.text(ANY_CHAR, max_size=40).map(lambda t: t.encode()),
                           st.sampled_from([b'{"text": "a b", "label": "x"}', b'{"text": 1}', b"{}", b"[]",
                                            b"text,label", b"a,b", b"\xff\xfe", b"\x00", b'"unclosed', b"1\t2"])),
                 max_size=12).map(b"\n".join)


def _read_or_project_error(read, path: Path) -> None:
    try:
        read(path)
    except BertologyError as exc:
        assert str(path) in str(exc), str(exc)
    # anything else (KeyError, TypeError, UnicodeDecodeError, IndexError...) propagates and fails the test


@BOUNDED
@given(data=LINES, suffix=st.sampled_from([".jsonl", ".csv", ".tsv"]),
       kind=st.sampled_from(["classification", "regression", "multiple_choice"]),
       on_error=st.sampled_from(["raise", "skip"]))
def test_task_readers_on_arbitrary_bytes(data, suffix, kind, on_error):
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"data{suffix}"
        path.write_bytes(data)
        _read_or_project_error(lambda p: read_examples(p, kind, on_error=on_error), path)


@BOUNDED
@given(data=LINES, suffix=st.sampled_from([".conll", ".jsonl"]), on_error=st.sampled_from(["raise", "skip"]))
def test_tagging_and_qa_readers_on_arbitrary_bytes(data, suffix, on_error):
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"data{suffix}"
        path.write_bytes(data)
        _read_or_project_error(lambda p: read_examples(p, "tagging", on_error=on_error), path)
        if suffix == ".jsonl":
            _read_or_project_error(lambda p: read_examples(p, "qa", on_error=on_error), path)


CONLLU_ROW = st.lists(st.one_of(st.integers(-2, 12).map(str), st.sampled_from(["_", "1-2", "2.1", "NOUN", "root"]),
                                st.text(ANY_CHAR, max_size=4)), min_size=8, max_size=11).map("\t".join)


@BOUNDED
@given(rows=st.lists(st.one_of(CONLLU_ROW, st.just(""), st.just("# comment"), st.binary(max_size=20).map(
    lambda b: b.decode("latin-1"))), max_size=15), raw=st.binary(max_size=40))
def test_conllu_reader_on_arbitrary_lines(rows, raw):
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "trees.conllu"
        path.write_bytes("\n".join(rows).encode("utf-8") + raw)
        _read_or_project_error(read_conllu, path)
