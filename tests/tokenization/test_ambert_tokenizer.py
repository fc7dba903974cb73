"""AMBERT's tokenizer: its word starts and coarse ids are exactly those pretraining derives from the prepared
corpus, aligned with the fine ids through pairs, truncation and padding, and its folder loads back as itself."""

from __future__ import annotations

import json
import sys
from itertools import islice

import numpy as np
import pytest
import torch
from transformers import AutoTokenizer

from bertology.assets import english_fortune_files, peoples_daily_path, peoples_daily_sentences, read_fortunes
from bertology.data.coarse import CLS, PAD, SEP, UNK, CoarseVocabulary, words
from bertology.data.prepare import prepare_corpus
from bertology.data.shards import TokenCorpus
from bertology.data.sources import parse_pku_line
from bertology.errors import BertologyError
from bertology.tokenization import (
    AmbertTokenizer,
    Tokenizer,
    WordPieceTokenizer,
    save_for_model,
    tokenizer_for_model,
)

# Mixed text: English word pieces, Chinese words that jieba joins, digits, several sentences in one line
# (one text to the tokenizer, several sentences to the preparation), a typed "[SEP]" (a word like any
# other, not the frame's), and a line with no CJK character at all.
SENTENCES = [
    "重庆银行行长发表讲话。",
    "Unbelievable tokenization, isn't it? OK 1998年经济增长了。",
    "行长说：银行很好。他们都长大了！ The end.",
    "中国 a [SEP] b 人民",
    "Plain English, with no Chinese at all. Another sentence here.",
]


@pytest.fixture(scope="module")
def wordpiece() -> WordPieceTokenizer:
    """A WordPiece vocabulary for Chinese characters and English word pieces."""
    chinese = ["".join(w) for w in islice(peoples_daily_sentences(), 400)]
    english = [t for f in english_fortune_files()[:3] for t in read_fortunes(f)][:400]
    return WordPieceTokenizer.train(iter(chinese + english), vocab_size=3000, limit_alphabet=3000, min_frequency=2)


@pytest.fixture(scope="module")
def prepared(wordpiece, tmp_path_factory) -> tuple[list[str], TokenCorpus]:
    """SENTENCES (plain text, a document a line) and 40 People's Daily lines (PKU format) the vocabulary was
    not trained on, prepared with jieba word starts: the texts, one a document, and the corpus."""
    folder = tmp_path_factory.mktemp("ambert-corpus")
    with open(peoples_daily_path(), encoding="utf-8") as handle:
        pku = [line for line in islice(handle, 1000, 1040) if parse_pku_line(line)]
    (folder / "pd.txt").write_text("".join(pku), encoding="utf-8")
    (folder / "mixed.txt").write_text("\n".join(SENTENCES) + "\n", encoding="utf-8")
    options = dict(chinese_words="jieba", workers=1, progress=False)
    prepare_corpus([folder / "mixed.txt"], folder / "mixed", wordpiece, doc_per_line=True, **options)
    prepare_corpus([folder / "pd.txt"], folder / "pd", wordpiece, input_format="pku", **options)
    return SENTENCES + [parse_pku_line(line) for line in pku], _Joined(TokenCorpus(folder / "mixed"),
                                                                      TokenCorpus(folder / "pd"))


class _Joined:
    """Two prepared corpora read as one, documents in order (what CoarseVocabulary.build reads)."""

    def __init__(self, *parts: TokenCorpus) -> None:
        self.parts = parts

    @property
    def num_documents(self) -> int:
        return sum(p.num_documents for p in self.parts)

    def document_sentences(self, d: int) -> list[tuple[TokenCorpus, int]]:
        for part in self.parts:
            if d < part.num_documents:
                return [(part, int(s)) for s in part.document_sentences(d)]
            d -= part.num_documents
        raise IndexError(d)

    def sentence(self, s: tuple[TokenCorpus, int]) -> np.ndarray:
        return s[0].sentence(s[1])

    def word_starts(self, s: tuple[TokenCorpus, int]) -> np.ndarray:
        return s[0].word_starts(s[1])


@pytest.fixture(scope="module")
def vocab(prepared) -> CoarseVocabulary:
    """The coarse vocabulary of the corpus (every word seen twice or more), as AMBERT pretraining builds it."""
    _, corpus = prepared
    return CoarseVocabulary.build(corpus, range(corpus.num_documents), size=10_000)


@pytest.fixture(scope="module")
def tokenizer(wordpiece, vocab) -> AmbertTokenizer:
    return AmbertTokenizer.from_wordpiece(wordpiece, coarse_vocab=vocab)


def test_word_starts_and_coarse_ids_equal_what_pretraining_derives_from_the_corpus(tokenizer, prepared, vocab):
    texts, corpus = prepared
    assert corpus.num_documents == len(texts)
    batch = tokenizer(texts, return_tensors=None, padding=False)
    starts = tokenizer.word_starts(texts)
    joined = count = 0
    for d, text in enumerate(texts):
        sentences = corpus.document_sentences(d)
        count += len(sentences)
        ids = np.concatenate([corpus.sentence(s) for s in sentences]).tolist()
        assert batch["input_ids"][d][1:-1] == ids, text
        # Each sentence starts a word; the preparation marks word starts per sentence, the tokenizer per text.
        expected = np.concatenate([corpus.word_starts(s) for s in sentences]).tolist()
        assert starts[d] == [1, *expected, 1], text
        coarse = [vocab.lookup(w) for s in sentences for w in words(corpus.sentence(s), corpus.word_starts(s))]
        assert batch["coarse_ids"][d] == [CLS, *coarse, SEP], text
        assert batch["coarse_token_type_ids"][d] == [0] * (len(coarse) + 2)
        assert batch["coarse_attention_mask"][d] == [1] * (len(coarse) + 2)
        joined += len(ids) - len(coarse)
    assert joined > 100, "jieba joined characters into words"
    assert count > len(texts), "some texts held several sentences"
    known = [c for row in batch["coarse_ids"] for c in row[1:-1]]
    assert sum(c > UNK for c in known) > 0.5 * len(known)  # the rest were seen once only
    by_text = dict(zip(texts, batch["coarse_ids"], strict=True))
    english = tokenizer.tokenize(SENTENCES[1])[:5]
    assert english == ["un", "##be", "##lie", "##v", "##able"]  # ... one word, one coarse token
    assert by_text[SENTENCES[1]][1] == vocab.lookup(tuple(tokenizer.convert_tokens_to_ids(english)))


def test_pairs_are_both_texts_words_with_their_segments(tokenizer, prepared):
    texts, _ = prepared
    firsts, seconds = texts[5:9], texts[9:13]
    pair = tokenizer(firsts, seconds, return_tensors=None, padding=False)
    a = tokenizer(firsts, return_tensors=None, padding=False)
    b = tokenizer(seconds, return_tensors=None, padding=False)
    for i in range(len(firsts)):
        assert pair["coarse_ids"][i] == a["coarse_ids"][i] + b["coarse_ids"][i][1:]
        n_a, n_b = len(a["coarse_ids"][i]), len(b["coarse_ids"][i]) - 1
        assert pair["coarse_token_type_ids"][i] == [0] * n_a + [1] * n_b
    starts = tokenizer.word_starts(firsts, seconds)
    assert starts[0] == tokenizer.word_starts(firsts[0])[0] + tokenizer.word_starts(seconds[0])[0][1:]


def test_truncation_keeps_the_words_of_the_kept_tokens(tokenizer, prepared, vocab):
    texts, _ = prepared
    long = [t for t in texts if len(tokenizer.encode(t)) > 20][:6]
    full = tokenizer.word_starts(long)
    batch = tokenizer(long, max_length=16, return_tensors=None)
    cut = tokenizer.word_starts(long, max_length=16)
    for i, ids in enumerate(batch["input_ids"]):
        # jieba reads the whole text, so kept tokens keep their marks; the cut word ends at [SEP]
        assert cut[i] == full[i][:15] + [1] and len(ids) == 16
        bounds = np.flatnonzero(cut[i]).tolist()
        expected = [vocab.lookup(tuple(ids[a:b])) for a, b in zip(bounds[1:-1], bounds[2:], strict=True)]
        n = sum(batch["coarse_attention_mask"][i])
        assert batch["coarse_ids"][i][:n] == [CLS, *expected, SEP] and set(batch["coarse_ids"][i][n:]) <= {PAD}
    pair = tokenizer(long[:2], long[2:4], max_length=20, return_tensors=None)
    for i, types in enumerate(pair["token_type_ids"]):
        assert len(types) == 20 and pair["coarse_ids"][i].count(SEP) == 2
        n = sum(pair["coarse_attention_mask"][i])
        assert pair["coarse_token_type_ids"][i][n - 1] == 1 and pair["coarse_ids"][i][n - 1] == SEP


def test_coarse_rows_pad_to_the_longest_like_the_fine_ones(tokenizer):
    texts = ["中国人民", SENTENCES[1], "好"]
    batch = tokenizer(texts)
    assert batch["coarse_ids"].dtype == torch.long and batch["coarse_ids"].shape[0] == 3
    lengths = batch["coarse_attention_mask"].sum(-1).tolist()
    assert batch["coarse_ids"].shape[1] == max(lengths) and lengths[2] == 3  # [CLS] 好 [SEP]
    for row, n in enumerate(lengths):
        assert (batch["coarse_ids"][row, n:] == PAD).all() and (batch["coarse_token_type_ids"][row, n:] == 0).all()
        assert batch["coarse_ids"][row, n - 1] == SEP
    fixed = tokenizer(texts, padding="max_length", max_length=40)
    assert fixed["input_ids"].shape == (3, 40) and torch.equal(fixed["coarse_ids"], batch["coarse_ids"])
    unpadded = tokenizer(texts, padding=False, return_tensors=None)
    assert [len(r) for r in unpadded["coarse_ids"]] == lengths
    plain = WordPieceTokenizer.from_wordpiece(tokenizer)(texts, text_pairs=texts[::-1])
    ours = tokenizer(texts, text_pairs=texts[::-1])
    assert set(ours) == set(plain) | {"coarse_ids", "coarse_attention_mask", "coarse_token_type_ids"}
    assert all(torch.equal(ours[k], plain[k]) for k in plain)


def test_saved_folder_loads_as_ambert_here_and_as_bert_in_transformers(tokenizer, vocab, tmp_path):
    tokenizer.save_pretrained(tmp_path)
    config = json.loads((tmp_path / "tokenizer_config.json").read_text(encoding="utf-8"))
    assert config["bertology_class"] == "AmbertTokenizer" and config["tokenizer_class"] == "BertTokenizer"
    assert CoarseVocabulary.load(tmp_path / "coarse_vocab.json") == vocab
    for path in (tmp_path, tmp_path / "vocab.txt", tmp_path / "tokenizer.json"):
        again = Tokenizer.from_pretrained(path)
        assert type(again) is AmbertTokenizer and again.coarse_vocab == vocab, path
        assert again(SENTENCES, return_tensors=None) == tokenizer(SENTENCES, return_tensors=None)
    hf = AutoTokenizer.from_pretrained(str(tmp_path))
    assert hf(SENTENCES, padding=True)["input_ids"] == tokenizer(SENTENCES, return_tensors=None)["input_ids"]
    (tmp_path / "coarse_vocab.json").unlink()
    with pytest.raises(FileNotFoundError, match="coarse_vocab.json"):
        Tokenizer.from_pretrained(tmp_path)


def test_an_ambert_model_folder_gets_the_ambert_tokenizer(wordpiece, vocab, tmp_path):
    run, model = tmp_path / "run", tmp_path / "run" / "model"
    model.mkdir(parents=True)
    vocab.save(run / "coarse_vocab.json")
    (model / "config.json").write_text(json.dumps({"model_type": "ambert"}), encoding="utf-8")
    made = tokenizer_for_model(wordpiece, model, extras=run)
    assert type(made) is AmbertTokenizer and made.coarse_vocab == vocab and made.vocab == wordpiece.vocab
    save_for_model(wordpiece, model, extras=run)
    loaded = Tokenizer.from_pretrained(model)
    assert type(loaded) is AmbertTokenizer and loaded.coarse_vocab == vocab
    # a plain WordPiece folder with the coarse vocabulary beside it loads as AMBERT's too
    plain = tmp_path / "plain"
    wordpiece.save_pretrained(plain)
    vocab.save(plain / "coarse_vocab.json")
    (plain / "config.json").write_text(json.dumps({"model_type": "ambert"}), encoding="utf-8")
    assert type(Tokenizer.from_pretrained(plain)) is AmbertTokenizer
    (model / "config.json").write_text(json.dumps({"model_type": "bert"}), encoding="utf-8")
    assert tokenizer_for_model(wordpiece, model) is wordpiece


def test_english_needs_no_jieba(wordpiece, vocab, monkeypatch):
    monkeypatch.setitem(sys.modules, "jieba", None)  # as if jieba were not installed
    tokenizer = AmbertTokenizer.from_wordpiece(wordpiece, coarse_vocab=vocab)
    batch = tokenizer([SENTENCES[-1], "unbelievable"], return_tensors=None, padding=False)
    assert tokenizer.word_starts("unbelievable") == [[1, 1, 0, 0, 0, 0, 1]]
    assert batch["coarse_ids"][1] == [CLS, vocab.lookup(tuple(tokenizer.encode("unbelievable")[1:-1])), SEP]
    with pytest.raises(BertologyError, match="jieba"):
        tokenizer(["中国人民"])
    chars = AmbertTokenizer.from_wordpiece(wordpiece, coarse_vocab=vocab, chinese_words=None)
    assert chars.word_starts("中国人民") == [[1, 1, 1, 1, 1, 1]]  # every character a word, as the corpus has it
