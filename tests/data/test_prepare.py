"""prepare_corpus end to end on real text: exact ids, word starts, boundaries, determinism, bad input."""

from __future__ import annotations

import itertools
import json

import jieba
import numpy as np
import pytest

from bertology import assets
from bertology.data import CorpusError, TokenCorpus, prepare_corpus
from bertology.data.sentences import has_cjk, split_sentences
from bertology.data.sources import SkipLog, iter_documents, list_input_files, parse_pku_line
from bertology.tokenization import Tokenizer

FAST = {"progress": False}


@pytest.fixture(scope="module")
def en_tok():
    return Tokenizer.from_pretrained(assets.minilm_dir())


@pytest.fixture(scope="module")
def pd_lines():
    with open(assets.peoples_daily_path(), encoding="utf-8") as handle:
        return list(itertools.islice(handle, 2000))


@pytest.fixture(scope="module")
def zh_tok(pd_lines):
    # Trained on the first half only, so the second half also exercises unknown characters.
    return Tokenizer.train([parse_pku_line(line) for line in pd_lines[:1000]], vocab_size=3000,
                           limit_alphabet=4000)


@pytest.fixture(scope="module")
def en_corpus(tmp_path_factory):
    folder = tmp_path_factory.mktemp("en")
    entries = []
    for path in assets.english_fortune_files()[:6]:
        entries.extend(itertools.islice(assets.read_fortunes(path), 150))
    (folder / "fortunes.txt").write_text("\n\n".join(entries) + "\n", encoding="utf-8")
    return folder / "fortunes.txt", entries


def _expected(path, tokenizer, **kwargs):
    """(sentence texts per document) the way prepare_corpus should see them."""
    docs = iter_documents(list_input_files([path]), SkipLog(), **kwargs)
    return [split_sentences(d.text, "auto") for d in docs]


def _ids(tokenizer, text):
    return tokenizer.backend.encode(text, add_special_tokens=False).ids


def test_english_round_trip_ids_word_starts_and_boundaries(tmp_path, en_tok, en_corpus):
    path, entries = en_corpus
    summary = prepare_corpus([path], tmp_path / "out", en_tok, workers=2, batch_docs=64, **FAST)
    corpus = TokenCorpus(tmp_path / "out")
    expected = _expected(path, en_tok)
    assert len(expected) == len(entries) == corpus.num_documents == summary.documents
    assert summary.tokens == corpus.num_tokens and summary.sentences == corpus.num_sentences
    assert corpus.meta["tokenizer"]["vocab_size"] == en_tok.vocab_size == corpus.vocab_size
    for d, sentences in enumerate(expected):
        span = corpus.document_sentences(d)
        assert len(span) == len(sentences)
        for s, text in zip(span, sentences, strict=True):
            assert corpus.sentence(s).tolist() == _ids(en_tok, text)
            word_ids = en_tok(text, return_tensors=None, padding=False, truncation=False,
                              return_word_ids=True)["word_ids"][0][1:-1]
            starts = [i == 0 or w != word_ids[i - 1] for i, w in enumerate(word_ids)]
            assert corpus.word_starts(s).tolist() == starts
    assert (tmp_path / "out" / "summary.md").read_text(encoding="utf-8").startswith("# Corpus preparation")


def test_output_is_byte_identical_across_runs_workers_and_batches(tmp_path, en_tok, en_corpus):
    path, _ = en_corpus
    runs = [dict(workers=2, batch_docs=50), dict(workers=1, batch_docs=1000), dict(workers=2, batch_chars=3000)]
    for i, options in enumerate(runs):
        prepare_corpus([path], tmp_path / str(i), en_tok, record_case=True, shard_tokens=5_000, **options, **FAST)
    files = sorted(p.relative_to(tmp_path / "0") for p in (tmp_path / "0").rglob("*.bin"))
    assert len(files) >= 5 * 4  # several shards, each with case.bin
    for i in (1, 2):
        assert sorted(p.relative_to(tmp_path / str(i)) for p in (tmp_path / str(i)).rglob("*.bin")) == files
        for name in files:
            assert (tmp_path / "0" / name).read_bytes() == (tmp_path / str(i) / name).read_bytes(), name
    meta = [json.loads((tmp_path / str(i) / "meta.json").read_text()) for i in range(3)]
    assert meta[0]["shards"] == meta[1]["shards"] == meta[2]["shards"]
    assert meta[0]["counts"] == meta[1]["counts"]
    # Shards end only at document ends: every shard's document offsets close at its last sentence.
    corpus = TokenCorpus(tmp_path / "0")
    assert sum(s["documents"] for s in meta[0]["shards"]) == corpus.num_documents


def test_word_starts_from_word_ids_when_the_model_is_not_wordpiece_aware(en_tok):
    # The id-based shortcut (a "##" token continues a word) must agree with the word-id path it replaces.
    from bertology.data.prepare import _Options, _Processor

    docs = [(text, f"doc:{i}") for i, text in enumerate([
        "Unbelievable tokenization, isn't it? Yes!", "naïve café ## a##b [MASK] x" + "y" * 120, "你好世界"])]
    options = _Options(en_tok.backend.to_str(), "uint16", "auto", None, False, 4096)
    fast = _Processor(options)
    slow = _Processor(options)
    slow._continues = None
    a, b = fast(docs), slow(docs)
    assert np.array_equal(a.tokens, b.tokens) and np.array_equal(a.sentence_lengths, b.sentence_lengths)
    assert np.array_equal(a.word_starts, b.word_starts) and not a.word_starts.all()


def test_case_classes_come_from_the_original_text(tmp_path, en_tok):
    f = tmp_path / "c.txt"
    f.write_text("Hello WORLD iPhone the 42 A ÉCOLE naïve ...\n", encoding="utf-8")
    prepare_corpus([f], tmp_path / "out", en_tok, record_case=True, **FAST)
    corpus = TokenCorpus(tmp_path / "out")
    enc = en_tok.backend.encode(f.read_text(encoding="utf-8").strip(), add_special_tokens=False)
    text = f.read_text(encoding="utf-8").strip()
    pieces = [text[a:b] for a, b in enc.offsets]
    classes = corpus.case(0).tolist()
    expected = {"hello": 2, "world": 3, "iphone": 4, "the": 1, "42": 0, "a": 2, "ecole": 3, "naive": 1, ".": 0}
    for piece, cls in zip(pieces, classes, strict=True):
        assert expected[piece.lower().replace("é", "e").replace("ï", "i")] == cls, piece
    # Without --record-case nothing is stored.
    prepare_corpus([f], tmp_path / "nocase", en_tok, **FAST)
    assert TokenCorpus(tmp_path / "nocase").case(0) is None
    assert not (tmp_path / "nocase" / "shard-00000" / "case.bin").exists()


def test_chinese_word_starts_follow_jieba_and_text_is_the_words_joined(tmp_path, zh_tok, pd_lines):
    src = tmp_path / "pd.txt"
    src.write_text("".join(pd_lines), encoding="utf-8")
    summary = prepare_corpus([src], tmp_path / "jieba", zh_tok, input_format="pku", workers=2, **FAST)
    prepare_corpus([src], tmp_path / "chars", zh_tok, input_format="pku", chinese_words=None, **FAST)
    corpus, chars = TokenCorpus(tmp_path / "jieba"), TokenCorpus(tmp_path / "chars")
    assert summary.documents == corpus.num_documents == 2000 and summary.skipped == {}
    assert corpus.meta["token_dtype"] == "uint16"
    words = list(itertools.islice(assets.peoples_daily_sentences(), 2000))
    table = zh_tok.backend
    checked_cjk = checked_unk = 0
    for d, doc_words in enumerate(words):
        text = "".join(doc_words)
        sentences = split_sentences(text, "zh")
        span = corpus.document_sentences(d)
        assert len(span) == len(sentences)
        # The document's tokens are the tokenizer's ids of its sentences, which join back to the words.
        assert "".join(sentences) == text
        for s, sentence in zip(span, sentences, strict=True):
            enc = table.encode(sentence, add_special_tokens=False)
            assert corpus.sentence(s).tolist() == enc.ids
            assert chars.sentence(s).tolist() == enc.ids
            begins, pos = set(), 0
            for w in jieba.lcut(sentence, HMM=True):
                begins.add(pos)
                pos += len(w)
            ws = corpus.word_starts(s).tolist()
            ws_chars = chars.word_starts(s).tolist()
            for i, ((a, b), token) in enumerate(zip(enc.offsets, enc.tokens, strict=True)):
                if b - a == 1 and has_cjk(sentence[a]):
                    assert ws[i] == (a in begins), (sentence, i)
                    assert ws_chars[i]  # without jieba every character is its own word
                    checked_cjk += 1
                    checked_unk += token == "[UNK]"
                else:
                    assert ws[i] == ws_chars[i]
    assert checked_cjk > 50_000 and checked_unk > 100
    assert sum(not x for x in corpus.word_starts(0).tolist()) > 0  # some characters continue a word


def test_bad_input_is_counted_by_reason_and_good_documents_all_kept(tmp_path, en_tok):
    src = tmp_path / "in"
    src.mkdir()
    (src / "a.txt").write_bytes(
        b"Good document one. It has two sentences.\n\n"
        b"bad \xc3\x28 bytes\n\n"                     # line 3: invalid UTF-8
        b"\x00\x01\x02\xff\xfe junk \x00\n\n"         # line 5: binary
        + b"y" * 200_000 + b"\n\n"                    # line 7: very long
        b"Good document two.\n\n"
        b"\xe2\x80\x8b\xe2\x80\x8b\n"                 # line 11: zero-width spaces only: no tokens
    )
    (src / "b.jsonl").write_text("\n".join([
        json.dumps({"text": "Good document three."}), "{broken", json.dumps({"title": "x"}),
        json.dumps({"text": ""}), json.dumps({"text": "Good document four. \u200b\u200b"}),
    ]) + "\n", encoding="utf-8")
    summary = prepare_corpus([src / "a.txt"], tmp_path / "text", en_tok, **FAST)
    assert summary.skipped == {"invalid_utf8": 1, "binary": 1, "line_too_long": 1, "empty_document": 1}
    assert summary.examples["invalid_utf8"] == [f"{src / 'a.txt'}:3"]
    assert summary.examples["binary"] == [f"{src / 'a.txt'}:5"]
    assert summary.examples["line_too_long"] == [f"{src / 'a.txt'}:7"]
    assert summary.examples["empty_document"] == [f"{src / 'a.txt'}:11"]
    corpus = TokenCorpus(tmp_path / "text")
    assert corpus.num_documents == 2
    got = [en_tok.decode(np.concatenate([corpus.sentence(s) for s in corpus.document_sentences(d)]))
           for d in range(2)]
    assert got == ["good document one. it has two sentences.", "good document two."]

    summary = prepare_corpus([src / "b.jsonl"], tmp_path / "jsonl", en_tok, input_format="jsonl",
                             language="zh", **FAST)
    assert summary.skipped == {"jsonl_invalid_json": 1, "jsonl_missing_field": 1, "empty_document": 1}
    assert summary.documents == 2
    assert summary.examples["jsonl_invalid_json"] == [f"{src / 'b.jsonl'}:2"]
    table = summary.to_table()
    assert "JSONL lines that are not JSON" in table and f"{src / 'b.jsonl'}:3" in table
    assert "| skipped: empty documents" in summary.to_markdown()
    meta = TokenCorpus(tmp_path / "jsonl").meta
    assert meta["summary"]["skipped"] == summary.skipped


def test_empty_sentences_are_dropped_and_counted(tmp_path, en_tok):
    f = tmp_path / "z.txt"
    f.write_text("你好。\n\u200b\u200b\n再见。\n", encoding="utf-8")
    summary = prepare_corpus([f], tmp_path / "out", en_tok, doc_per_file=True, **FAST)
    assert summary.documents == 1 and summary.sentences == 2
    assert summary.skipped == {"empty_sentence": 1} and summary.examples["empty_sentence"] == [f"{f}:1"]


def test_long_sentences_are_cut_into_chunks_not_dropped(tmp_path, en_tok):
    words = " ".join(f"Word{i} unbelievable" for i in range(60))
    f = tmp_path / "long.txt"
    f.write_text(f"Short one. {words}. Short two.\n", encoding="utf-8")
    summary = prepare_corpus([f], tmp_path / "out", en_tok, max_sentence_tokens=16, **FAST)
    corpus = TokenCorpus(tmp_path / "out")
    full = _ids(en_tok, words + ".")
    assert summary.long_sentences == 1 and summary.extra_chunks == corpus.num_sentences - 3
    lengths = corpus.sentence_lengths()
    assert lengths.max() <= 16 and corpus.num_documents == 1
    middle = [corpus.sentence(s) for s in range(1, corpus.num_sentences - 1)]
    assert np.concatenate(middle).tolist() == full
    assert all(corpus.word_starts(s)[0] for s in range(corpus.num_sentences))  # cut at word starts
    assert "long sentences cut into chunks" in summary.to_table()


def test_output_folder_rules(tmp_path, en_tok):
    f = tmp_path / "t.txt"
    f.write_text("One document.\n", encoding="utf-8")
    prepare_corpus([f], tmp_path / "out", en_tok, **FAST)
    with pytest.raises(CorpusError, match="not empty.*overwrite"):
        prepare_corpus([f], tmp_path / "out", en_tok, **FAST)
    f.write_text("Another document.\n\nAnd a third.\n", encoding="utf-8")
    prepare_corpus([f], tmp_path / "out", en_tok, overwrite=True, **FAST)
    assert TokenCorpus(tmp_path / "out").num_documents == 2
    with pytest.raises(FileNotFoundError):
        prepare_corpus([tmp_path / "missing.txt"], tmp_path / "new", en_tok, **FAST)
    with pytest.raises(ValueError, match="input_format"):
        prepare_corpus([f], tmp_path / "new", en_tok, input_format="xml", **FAST)


def test_options_are_a_typed_config_checked_before_any_file_is_read(tmp_path, en_tok):
    from bertology.data.prepare import PrepareConfig
    from bertology.errors import ConfigError

    missing = tmp_path / "missing.txt"  # never opened: every bad option fails first
    with pytest.raises(ConfigError, match=r"^prepare_corpus: unknown field 'worker'; did you mean 'workers'\?"):
        prepare_corpus([missing], tmp_path / "out", en_tok, worker=2)
    with pytest.raises(ConfigError, match="field 'input_format' .*did you mean 'jsonl'"):
        prepare_corpus([missing], tmp_path / "out", en_tok, input_format="jsnl")
    for bad in ({"workers": 0}, {"workers": True}, {"shard_tokens": 2.5}, {"record_case": "yes"}):
        with pytest.raises(ConfigError, match=f"'{next(iter(bad))}'"):
            PrepareConfig(**bad)
    with pytest.raises(ConfigError, match="at most one of doc_per_file and doc_per_line"):
        PrepareConfig(doc_per_file=True, doc_per_line=True)
    with pytest.raises(ConfigError, match="apply to the text format"):
        PrepareConfig(input_format="jsonl", doc_per_line=True)
    assert PrepareConfig(chinese_words="none").chinese_words is None
    f = tmp_path / "t.txt"
    f.write_text("One document.\n\nAnother one.\n", encoding="utf-8")
    config = PrepareConfig(progress=False, doc_per_line=True)
    assert prepare_corpus([f], tmp_path / "out", en_tok, config).documents == 2
    assert prepare_corpus([f], tmp_path / "again", en_tok, config, doc_per_line=False).documents == 2


def test_batches_in_flight_are_bounded(en_tok):
    # Memory must not grow with the corpus: the pool may only run a few batches ahead of the writer.
    from bertology.data.prepare import _Options, _results

    pulled = []

    def batches():
        for i in range(50):
            pulled.append(i)
            yield [(f"Document number {i}. It is short.", f"x:{i}")]

    options = _Options(en_tok.backend.to_str(), "uint16", "auto", None, False, 4096)
    results = _results(batches(), options, workers=2)
    first = next(results)
    assert len(first.sentence_lengths) == 2 and len(pulled) <= 5
    assert sum(1 for _ in results) == 49 and len(pulled) == 50


def test_a_failure_midway_leaves_no_finished_looking_folder(tmp_path, en_tok, en_corpus, monkeypatch):
    from bertology.data import prepare as prepare_module

    path, _ = en_corpus
    calls = []
    original = prepare_module.ShardWriter.add

    def failing_add(self, *args):
        calls.append(1)
        if len(calls) == 3:
            raise RuntimeError("disk full")
        return original(self, *args)

    monkeypatch.setattr(prepare_module.ShardWriter, "add", failing_add)
    with pytest.raises(RuntimeError, match="disk full"):
        prepare_corpus([path], tmp_path / "out", en_tok, workers=2, batch_docs=20, shard_tokens=1000, **FAST)
    assert not (tmp_path / "out" / "meta.json").exists()
    assert not [p for p in (tmp_path / "out").iterdir() if p.name.startswith(".")]  # no temp shard left
    with pytest.raises(CorpusError, match="no meta.json"):
        TokenCorpus(tmp_path / "out")


def test_chunk_lookup_gives_the_tokens_of_whole_sentences(en_tok):
    # Tokenizing each whitespace-separated chunk once (English fast path) must equal tokenizing sentences whole,
    # case classes included; a control character Python splits at but BERT deletes takes the slow path.
    from bertology.data.prepare import _Options, _Processor

    texts = ["Hello WORLD iPhone, naïve CAFÉ... [MASK]x  tab\there\nnew-line ΑΣ Σ", "x" * 130 + " ok. Yes!",
             "a\x1cb c\x0bd", "Hello again world, world. Hello!", "\u2028spaced\u3000out\xa0text"]
    docs = [(text, f"doc:{i}") for i, text in enumerate(texts)]
    options = _Options(en_tok.backend.to_str(), "uint16", "auto", None, True, 4096)
    fast, slow = _Processor(options), _Processor(options)
    assert fast._chunks is not None
    slow._chunks = None
    for _ in range(2):  # the second pass looks every chunk up
        a, b = fast(docs), slow(docs)
        assert np.array_equal(a.tokens, b.tokens) and np.array_equal(a.sentence_lengths, b.sentence_lengths)
        assert np.array_equal(a.word_starts, b.word_starts) and np.array_equal(a.case, b.case)
