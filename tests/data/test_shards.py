"""The shard format: written in pieces, read back exactly, and unfinished or damaged folders refused."""

from __future__ import annotations

import numpy as np
import pytest

from bertology.data import CorpusError, TokenCorpus
from bertology.data.shards import FORMAT_VERSION, ShardWriter, token_dtype, write_meta


def _random_documents(rng, n_docs):
    """Documents as lists of sentences, each sentence (ids, word_starts, case)."""
    docs = []
    for _ in range(n_docs):
        sents = []
        for _ in range(int(rng.integers(1, 5))):
            n = int(rng.integers(1, 12))
            ws = rng.integers(0, 2, n).astype(np.uint8)
            ws[0] = 1
            sents.append((rng.integers(0, 70000, n), ws, rng.integers(0, 5, n).astype(np.uint8)))
        docs.append(sents)
    return docs


def _write(folder, docs, shard_tokens, record_case=True, vocab_size=70000, batch=7):
    dtype = token_dtype(vocab_size)
    writer = ShardWriter(folder, dtype, record_case, shard_tokens)
    for i in range(0, len(docs), batch):  # several add() calls, as prepare_corpus makes them
        chunk = docs[i:i + batch]
        sents = [s for d in chunk for s in d]
        writer.add(np.concatenate([s[0] for s in sents]), np.concatenate([s[1] for s in sents]),
                   np.concatenate([s[2] for s in sents]) if record_case else None,
                   np.array([len(s[0]) for s in sents]), np.array([len(d) for d in chunk]))
    shards = writer.close()
    counts = {"documents": len(docs), "sentences": sum(len(d) for d in docs),
              "tokens": sum(len(s[0]) for d in docs for s in d)}
    write_meta(folder, {"format_version": FORMAT_VERSION, "token_dtype": dtype.name, "record_case": record_case,
                        "tokenizer": {"vocab_size": vocab_size}, "counts": counts, "shards": shards})
    return shards


def test_round_trip_across_shards_with_global_indices(tmp_path):
    rng = np.random.default_rng(0)
    docs = _random_documents(rng, 60)
    shards = _write(tmp_path, docs, shard_tokens=100)
    assert len(shards) > 3
    corpus = TokenCorpus(tmp_path)
    assert corpus.num_documents == 60 and corpus.vocab_size == 70000 and corpus.has_case
    assert corpus.num_sentences == sum(len(d) for d in docs)
    assert corpus.meta["token_dtype"] == "uint32"
    s = 0
    for d, doc in enumerate(docs):
        assert corpus.document_sentences(d) == range(s, s + len(doc))
        for ids, ws, case in doc:
            got = corpus.sentence(s)
            assert got.dtype == np.int64 and np.array_equal(got, ids)
            assert np.array_equal(corpus.word_starts(s), ws.astype(bool))
            assert np.array_equal(corpus.case(s), case)
            assert corpus.document_of_sentence(s) == d
            s += 1
    assert np.array_equal(corpus.sentence_lengths(), [len(x[0]) for doc in docs for x in doc])
    assert np.array_equal(corpus.document_lengths(), [len(doc) for doc in docs])
    # Shards close once past the budget, and only at document ends.
    assert all(sh["tokens"] >= 100 for sh in shards[:-1])
    assert sum(sh["documents"] for sh in shards) == 60
    got = corpus.sentence(0)
    got[:] = -1  # a copy: the memory map stays read-only and unchanged
    assert np.array_equal(corpus.sentence(0), docs[0][0][0])
    with pytest.raises(IndexError):
        corpus.sentence(corpus.num_sentences)
    with pytest.raises(IndexError):
        corpus.document_sentences(-1)


def test_same_content_whatever_the_shard_size(tmp_path):
    docs = _random_documents(np.random.default_rng(1), 30)
    _write(tmp_path / "one", docs, shard_tokens=10**9, record_case=False, vocab_size=30000)
    _write(tmp_path / "many", docs, shard_tokens=37, record_case=False, vocab_size=30000)
    one, many = TokenCorpus(tmp_path / "one"), TokenCorpus(tmp_path / "many")
    assert one.meta["token_dtype"] == "uint16" and one.case(0) is None
    assert len(one.meta["shards"]) == 1 and len(many.meta["shards"]) > 3
    assert np.array_equal(one.sentence_lengths(), many.sentence_lengths())
    for s in range(one.num_sentences):
        assert np.array_equal(one.sentence(s), many.sentence(s))
    for d in range(one.num_documents):
        assert one.document_sentences(d) == many.document_sentences(d)


def test_token_dtype_by_vocab_size():
    assert token_dtype(30522) == np.uint16 and token_dtype(65535) == np.uint16
    assert token_dtype(65536) == np.uint32 and token_dtype(250002) == np.uint32


def test_unfinished_and_damaged_folders_raise_clear_errors(tmp_path):
    docs = _random_documents(np.random.default_rng(2), 10)
    _write(tmp_path, docs, shard_tokens=50)
    (tmp_path / "meta.json").rename(tmp_path / "meta.saved")
    with pytest.raises(CorpusError, match=f"{tmp_path}.*no meta.json.*unfinished"):
        TokenCorpus(tmp_path)
    (tmp_path / "meta.saved").rename(tmp_path / "meta.json")
    TokenCorpus(tmp_path)

    tokens = tmp_path / "shard-00001" / "tokens.bin"
    data = tokens.read_bytes()
    tokens.write_bytes(data[:-4])
    with pytest.raises(CorpusError, match="shard-00001/tokens.bin.*truncated"):
        TokenCorpus(tmp_path)
    tokens.write_bytes(data)

    sentences = tmp_path / "shard-00000" / "sentences.bin"
    offsets = np.fromfile(sentences, dtype=np.int64)
    offsets[-1] += 1
    offsets.tofile(sentences)
    with pytest.raises(CorpusError, match="sentences.bin.*offsets"):
        TokenCorpus(tmp_path)

    (tmp_path / "meta.json").write_text("{", encoding="utf-8")
    with pytest.raises(CorpusError, match="corrupt"):
        TokenCorpus(tmp_path)
    with pytest.raises(CorpusError, match="does not exist"):
        TokenCorpus(tmp_path / "nowhere")


def test_empty_corpus_reads_as_empty(tmp_path):
    _write(tmp_path, [], shard_tokens=10)
    corpus = TokenCorpus(tmp_path)
    assert (corpus.num_documents, corpus.num_sentences, corpus.num_tokens) == (0, 0, 0)
    assert len(corpus.sentence_lengths()) == 0
