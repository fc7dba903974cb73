"""Parallel text: `prepare_corpus(input_format="parallel")` from TSV and from two aligned files, bad lines counted,
misaligned files refused, and the `parallel` instance format (layout, language ids, truncation)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from bertology.cli.main import main
from bertology.data import TokenCorpus, prepare_corpus
from bertology.data.formats import FormatConfig, PretrainingDataset, Specials
from bertology.data.parallel import count_lines, keep_whole_pairs, parallel_languages
from bertology.errors import ConfigError, DataError
from bertology.tokenization import Tokenizer

sys.path.insert(0, str(Path(__file__).parent))
from fake_corpus import FakeCorpus  # noqa: E402

FAST = {"progress": False, "workers": 1}
WORDS = ("the cat dog sees a small big red house tree runs eats old new green blue bird fish swims "
         "flies sleeps under over near far happy sad").split()


def _other(word: str) -> str:
    """A made-up second language: each word reversed and suffixed, a fixed one-to-one mapping."""
    return word[::-1] + "o"


def synthetic_pairs(n: int, seed: int = 0) -> list[tuple[str, str]]:
    rng = np.random.default_rng(seed)
    pairs = []
    for _ in range(n):
        words = [WORDS[i] for i in rng.integers(0, len(WORDS), int(rng.integers(3, 9)))]
        pairs.append((" ".join(words) + ". " + words[0] + " too.", " ".join(map(_other, words)) + "."))
    return pairs


@pytest.fixture(scope="module")
def tok():
    lines = [side for pair in synthetic_pairs(200) for side in pair]
    return Tokenizer.train(iter(lines), vocab_size=300, limit_alphabet=100, min_frequency=1)


def _ids(tok, text):
    return tok.backend.encode(text, add_special_tokens=False).ids


def _sides(corpus, d):
    return [corpus.sentence(s).tolist() for s in corpus.document_sentences(d)]


def test_tsv_pairs_become_documents_of_two_sentences_and_bad_lines_are_counted(tmp_path, tok):
    pairs = synthetic_pairs(30)
    lines = [f"{a}\t{b}" for a, b in pairs]
    # line 5: no tab; line 9: two tabs; line 12: empty target; line 15: blank (no pair, nothing lost)
    lines[4] = pairs[4][0]
    lines[8] = f"{pairs[8][0]}\t{pairs[8][1]}\textra"
    lines[11] = f"{pairs[11][0]}\t  "
    lines[14] = ""
    (tmp_path / "en-xx.tsv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    summary = prepare_corpus([tmp_path / "en-xx.tsv"], tmp_path / "out", tok, input_format="parallel",
                             languages=["en", "xx"], **FAST)
    corpus = TokenCorpus(tmp_path / "out")
    good = [p for i, p in enumerate(pairs) if i not in (4, 8, 11, 14)]
    assert corpus.num_documents == summary.documents == len(good)
    for d, (a, b) in enumerate(good):
        # each side one sentence, whatever punctuation it holds (the source has two sentence ends)
        assert _sides(corpus, d) == [_ids(tok, a), _ids(tok, b)]
    assert corpus.meta["parallel"] is True and corpus.meta["languages"] == ["en", "xx"]
    assert parallel_languages(corpus.meta) == ["en", "xx"]
    assert corpus.meta["options"]["input_format"] == "parallel"
    name = str(tmp_path / "en-xx.tsv")
    assert summary.skipped == {"parallel_bad_tsv": 2, "parallel_empty_side": 1}
    assert summary.examples["parallel_bad_tsv"] == [f"{name}:5", f"{name}:9"]
    assert summary.examples["parallel_empty_side"] == [f"{name}:12"]
    assert "without exactly one tab" in (tmp_path / "out" / "summary.md").read_text(encoding="utf-8")


def test_two_aligned_files_give_the_same_shards_as_the_tsv(tmp_path, tok):
    pairs = synthetic_pairs(40, seed=1)
    (tmp_path / "a.tsv").write_text("".join(f"{a}\t{b}\n" for a, b in pairs), encoding="utf-8")
    (tmp_path / "en.txt").write_text("".join(f"{a}\n" for a, _ in pairs), encoding="utf-8")
    (tmp_path / "xx.txt").write_text("".join(f"{b}\n" for _, b in pairs), encoding="utf-8")  # no final newline
    prepare_corpus([tmp_path / "a.tsv"], tmp_path / "tsv", tok, input_format="parallel", languages=["en", "xx"],
                   **FAST)
    prepare_corpus([f"{tmp_path / 'en.txt'}::{tmp_path / 'xx.txt'}"], tmp_path / "two", tok,
                   input_format="parallel", languages=["en", "xx"], progress=False, workers=2, batch_docs=7)
    files = sorted(p.relative_to(tmp_path / "tsv") for p in (tmp_path / "tsv").rglob("*.bin"))
    assert files
    for name in files:
        assert (tmp_path / "tsv" / name).read_bytes() == (tmp_path / "two" / name).read_bytes(), name
    corpus = TokenCorpus(tmp_path / "two")
    assert corpus.num_documents == 40 and corpus.num_sentences == 80
    assert all(len(corpus.document_sentences(d)) == 2 for d in range(corpus.num_documents))
    assert json.loads((tmp_path / "two" / "meta.json").read_text())["languages"] == ["en", "xx"]


def test_a_bad_line_in_one_file_drops_its_pair_without_shifting_the_rest(tmp_path, tok):
    pairs = synthetic_pairs(10, seed=2)
    src = [a.encode() for a, _ in pairs]
    src[3] = b"\xff\xfe not utf-8"
    tgt = [b.encode() for _, b in pairs]
    tgt[6] = b""  # an empty side
    (tmp_path / "en.txt").write_bytes(b"\n".join(src) + b"\n")
    (tmp_path / "xx.txt").write_bytes(b"\n".join(tgt) + b"\n")
    summary = prepare_corpus([f"{tmp_path / 'en.txt'}::{tmp_path / 'xx.txt'}"], tmp_path / "out", tok,
                             input_format="parallel", languages=["en", "xx"], **FAST)
    corpus = TokenCorpus(tmp_path / "out")
    good = [p for i, p in enumerate(pairs) if i not in (3, 6)]
    assert [_sides(corpus, d) for d in range(corpus.num_documents)] == [[_ids(tok, a), _ids(tok, b)] for a, b in good]
    assert summary.skipped == {"invalid_utf8": 1, "parallel_partner_skipped": 1, "parallel_empty_side": 1}
    assert summary.examples["invalid_utf8"] == [f"{tmp_path / 'en.txt'}:4"]
    assert summary.examples["parallel_partner_skipped"] == [f"{tmp_path / 'xx.txt'}:4"]


def test_misaligned_files_are_refused_naming_both_and_their_line_counts(tmp_path, tok):
    (tmp_path / "en.txt").write_text("a cat\na dog\nthe bird\n", encoding="utf-8")
    (tmp_path / "xx.txt").write_text("taco\ngodo", encoding="utf-8")
    assert count_lines(tmp_path / "xx.txt") == 2 and count_lines(tmp_path / "en.txt") == 3
    with pytest.raises(DataError) as err:
        prepare_corpus([f"{tmp_path / 'en.txt'}::{tmp_path / 'xx.txt'}"], tmp_path / "out", tok,
                       input_format="parallel", languages=["en", "xx"], **FAST)
    message = str(err.value)
    assert f"{tmp_path / 'en.txt'} has 3 lines" in message and f"{tmp_path / 'xx.txt'} has 2" in message
    assert not (tmp_path / "out").exists()  # refused before anything was written
    with pytest.raises(ConfigError, match="SOURCE_FILE::TARGET_FILE"):
        prepare_corpus([f"{tmp_path / 'en.txt'}::"], tmp_path / "out", tok, input_format="parallel",
                       languages=["en", "xx"], **FAST)


def test_languages_are_checked_with_the_options():
    from bertology.data.prepare import PrepareConfig

    with pytest.raises(ConfigError, match="needs 'languages'"):
        PrepareConfig(input_format="parallel")
    with pytest.raises(ConfigError, match="two distinct"):
        PrepareConfig(input_format="parallel", languages=["en", "en"])
    with pytest.raises(ConfigError, match="applies to the parallel format"):
        PrepareConfig(languages=["en", "zh"])
    assert PrepareConfig(input_format="parallel", languages=[" en", "zh"]).languages == ["en", "zh"]


def test_a_side_over_max_sentence_tokens_drops_the_whole_pair():
    keep, skips = keep_whole_pairs(np.array([3, 4, 9, 2, 0, 5, 4, 4]), ["f:1", "f:2", "f:3", "f:4"], 8)
    assert keep.tolist() == [True, True, False, False, False, False, True, True]
    assert skips == [("parallel_side_too_long", "f:2"), ("parallel_empty_side", "f:3")]


def test_cli_prepares_parallel_text_and_info_shows_it(tmp_path, tok, capsys):
    pairs = synthetic_pairs(12, seed=3)
    (tmp_path / "p.tsv").write_text("".join(f"{a}\t{b}\n" for a, b in pairs), encoding="utf-8")
    tok.save_pretrained(tmp_path / "tok")
    assert main(["corpus", "prepare", str(tmp_path / "p.tsv"), "-o", str(tmp_path / "out"), "--tokenizer",
                 str(tmp_path / "tok"), "--input-format", "parallel", "--languages", "en,xx", "--no-progress",
                 "--workers", "1"]) == 0
    assert TokenCorpus(tmp_path / "out").meta["languages"] == ["en", "xx"]
    assert main(["corpus", "info", str(tmp_path / "out")]) == 0
    assert "en -> xx" in capsys.readouterr().out


# ------------------------------------------------------------------------------ the `parallel` instance format

SP = Specials(cls=2, sep=3, pad=0)


class ParallelFake(FakeCorpus):
    meta = {"parallel": True, "languages": ["en", "xx"]}


def test_parallel_format_layout_language_ids_and_longest_first_truncation():
    a, b = list(range(10, 30)), list(range(40, 46))  # 20 and 6 tokens
    corpus = ParallelFake([[a, b], [[50, 52, 53], [60, 61, 62, 64]]])
    data = PretrainingDataset(corpus, FormatConfig(format="parallel", max_length=20), SP, np.arange(2))
    assert len(data) == 2
    item = data[0]
    # budget 17: the source (longer) loses its last tokens until it is down to 11
    assert item["input_ids"].tolist() == [2, *a[:11], 3, *b, 3]
    assert item["token_type_ids"].tolist() == [0] * 12 + [1] * 8
    assert item["maskable"].tolist() == [False] + [True] * 11 + [False] + [True] * 6 + [False]
    assert np.flatnonzero(item["sentence_starts"]).tolist() == [1, 13]
    assert item["document"] == 0 and "sentence_label" not in item
    short = data[1]
    assert short["input_ids"].tolist() == [2, 50, 52, 53, 3, 60, 61, 62, 64, 3]
    assert short["token_type_ids"].tolist() == [0, 0, 0, 0, 1, 1, 1, 1, 1, 1]
    # both sides long: longest first evens them out (budget 13; on a tie the source loses first): 6 and 7 tokens
    even = PretrainingDataset(ParallelFake([[list(range(10, 40)), list(range(40, 65))]]),
                              FormatConfig(format="parallel", max_length=16), SP, np.arange(1))[0]
    assert even["input_ids"].tolist() == [2, *range(10, 16), 3, *range(40, 47), 3]


def test_parallel_format_refuses_a_corpus_that_is_not_pairs():
    with pytest.raises(ConfigError, match="--input-format parallel"):
        PretrainingDataset(FakeCorpus([[[5, 6], [7, 8]]]), FormatConfig(format="parallel"), SP, np.arange(1))
    with pytest.raises(ConfigError, match="holds 3 sentences"):
        PretrainingDataset(ParallelFake([[[5, 6], [7, 8], [9]]]), FormatConfig(format="parallel"), SP, np.arange(1))
