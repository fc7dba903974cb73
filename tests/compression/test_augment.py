"""TinyBERT data augmentation: which words change, to what, how often, and the file round trip with reuse."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from bertology import BertConfig, WordPieceTokenizer
from bertology.compression.distillation.augment import (
    Augmenter,
    AugmentOptions,
    augment_file,
    read_word_vectors,
    split_words,
)
from bertology.errors import BertologyError, ConfigError, DataError
from bertology.models.bert import BertForMaskedLM

SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
WORDS = ["the", "a", "cat", "dog", "sat", "on", "mat", "ran", "big", "small", "red", "blue", "green",
         "house", "car", "tree", "un", "good", "bad", "very", ".", ",", "!"]
PIECES = ["##believ", "##able", "##s", "##ly"]
VOCAB = SPECIALS + WORDS + PIECES
SENTENCE = "the cat sat on the mat"


@pytest.fixture
def tokenizer(tmp_path: Path) -> WordPieceTokenizer:
    folder = tmp_path / "vocab"
    folder.mkdir()
    (folder / "vocab.txt").write_text("\n".join(VOCAB) + "\n", encoding="utf-8")
    return WordPieceTokenizer.from_pretrained(folder)


@pytest.fixture
def teacher(make_tiny_config) -> BertForMaskedLM:
    torch.manual_seed(0)
    config: BertConfig = make_tiny_config(vocab_size=len(VOCAB), max_position_embeddings=64)
    return BertForMaskedLM(config).eval()


def words_of(text: str) -> list[str]:
    return [text[s:e] for s, e in split_words(text)]


def test_split_words_punctuation_and_cjk() -> None:
    assert words_of("Hello, world! 中国人ok") == ["Hello", ",", "world", "!", "中", "国", "人", "ok"]


def test_same_seed_same_output_other_seed_differs(teacher, tokenizer) -> None:
    texts = [SENTENCE, "a big red car ran"]

    def run(seed: int) -> list:
        return Augmenter(teacher, tokenizer, AugmentOptions(copies=5, seed=seed, top_k=5)).augment(texts)

    assert run(1) == run(1)
    assert run(1) != run(2)


def test_chunking_does_not_change_output(teacher, tokenizer) -> None:
    texts = [SENTENCE, "a big red car ran", "the dog sat"]
    options = AugmentOptions(copies=3, batch_size=2)
    whole = Augmenter(teacher, tokenizer, options).augment(texts)
    pieces = Augmenter(teacher, tokenizer, options)
    split = pieces.augment(texts[:1]) + pieces.augment(texts[1:], first_index=1)
    assert whole == split


def test_p0_keeps_the_text_exactly(teacher, tokenizer) -> None:
    text = "The  cat, unbelievable!"
    copies = Augmenter(teacher, tokenizer, AugmentOptions(p=0.0, copies=4)).augment([text])[0]
    assert copies == [(text, None)] * 4


def test_p1_changes_every_word_and_keeps_punctuation(teacher, tokenizer) -> None:
    text = "the cat, unbelievable mat!"
    copies = Augmenter(teacher, tokenizer, AugmentOptions(p=1.0, copies=6)).augment([text])[0]
    original = words_of(text)
    for copy, _ in copies:
        new = words_of(copy)
        assert len(new) == len(original)
        for old, now in zip(original, new, strict=True):
            if old in {",", "!"}:
                assert now == old
            else:
                assert now != old and not now.startswith("##") and now not in SPECIALS


def test_single_piece_replacements_come_from_the_teacher_top_k(teacher, tokenizer) -> None:
    favoured = ["red", "blue", "green"]
    with torch.no_grad():
        bias = teacher.mlm_head.decoder.bias
        for token in favoured:
            bias[VOCAB.index(token)] = 50.0
        # Special tokens and pieces score higher still, yet must never be chosen.
        for token in ["[MASK]", "[UNK]", "##able", ","]:
            bias[VOCAB.index(token)] = 100.0
    options = AugmentOptions(p=1.0, top_k=3, copies=30)
    copies = Augmenter(teacher, tokenizer, options).augment([SENTENCE])[0]
    seen = set()
    for copy, _ in copies:
        new = words_of(copy)
        assert set(new) <= set(favoured)
        seen.update(new)
    assert seen == set(favoured)  # uniform over the top-K: 180 draws reach all three


def test_original_word_is_never_its_own_candidate(teacher, tokenizer) -> None:
    with torch.no_grad():
        teacher.mlm_head.decoder.bias[VOCAB.index("cat")] = 100.0
    copies = Augmenter(teacher, tokenizer, AugmentOptions(p=1.0, top_k=2, copies=10)).augment(["cat"])[0]
    assert all(copy != "cat" for copy, _ in copies)


def write_glove(path: Path, vectors: dict[str, list[float]], header: bool = False) -> Path:
    lines = [f"{len(vectors)} {len(next(iter(vectors.values())))}"] if header else []
    lines += [" ".join([word, *map(str, vector)]) for word, vector in vectors.items()]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


GLOVE = {
    "unbelievable": [1.0, 0.0, 0.0],
    "incredible": [0.9, 0.1, 0.0],
    "amazing": [0.8, 0.3, 0.1],
    "astonishing": [0.6, 0.6, 0.2],
    "boring": [-1.0, 0.2, 0.0],
    "table": [0.0, 0.0, 1.0],
}


def test_multi_piece_words_take_a_nearest_neighbour_from_a_glove_file(teacher, tokenizer, tmp_path) -> None:
    assert len(tokenizer.tokenize("unbelievable")) == 3
    path = write_glove(tmp_path / "glove.txt", GLOVE)
    words = [w for w in GLOVE if w != "unbelievable"]
    matrix = np.array([GLOVE[w] for w in words])
    query = np.array(GLOVE["unbelievable"])
    cosine = matrix @ query / (np.linalg.norm(matrix, axis=1) * np.linalg.norm(query))
    nearest = {words[i] for i in np.argsort(-cosine)[:2]}
    assert nearest == {"incredible", "amazing"}
    options = AugmentOptions(p=1.0, top_k=2, copies=20, vectors=str(path))
    copies = Augmenter(teacher, tokenizer, options).augment(["Unbelievable"])[0]
    got = {copy for copy, _ in copies}
    assert got == {"Incredible", "Amazing"}  # the original's case is kept


def test_multi_piece_word_missing_from_the_vectors_stays(teacher, tokenizer, tmp_path) -> None:
    path = write_glove(tmp_path / "glove.txt", {"table": [1.0, 0.0], "chair": [0.9, 0.1]})
    options = AugmentOptions(p=1.0, copies=3, vectors=str(path))
    assert Augmenter(teacher, tokenizer, options).augment(["unbelievable"])[0] == [("unbelievable", None)] * 3


def test_teacher_embeddings_neighbours_computed_by_hand(teacher, tokenizer) -> None:
    pieces = tokenizer.convert_tokens_to_ids(tokenizer.tokenize("unbelievable"))
    weight = teacher.bert.embeddings.word.weight.detach().numpy()
    query = weight[pieces].mean(axis=0)
    whole = [i for i, t in enumerate(VOCAB) if t not in SPECIALS and not t.startswith("##") and t.isalnum()]
    cosine = weight[whole] @ query / (np.linalg.norm(weight[whole], axis=1) * np.linalg.norm(query))
    nearest = {VOCAB[whole[i]] for i in np.argsort(-cosine)[:3]}
    options = AugmentOptions(p=1.0, top_k=3, copies=30, vectors="teacher")
    got = {copy for copy, _ in Augmenter(teacher, tokenizer, options).augment(["unbelievable"])[0]}
    assert got <= nearest and len(got) >= 2


def test_glove_reader_with_and_without_header(tmp_path) -> None:
    plain = read_word_vectors(write_glove(tmp_path / "plain.txt", GLOVE))
    headed = read_word_vectors(write_glove(tmp_path / "headed.txt", GLOVE, header=True))
    for table in (plain, headed):
        assert table.words == list(GLOVE)
        assert table.matrix.shape == (6, 3)
        np.testing.assert_allclose(table.vector("amazing"), GLOVE["amazing"])


def test_glove_reader_bad_lines_name_file_and_line(tmp_path) -> None:
    path = tmp_path / "bad.txt"
    path.write_text("a 1 2\nb 3 4\nc 5\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"bad\.txt:3: expected a word and 2 numbers"):
        read_word_vectors(path)
    path.write_text("2 2\na 1 2\nb x 4\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"bad\.txt:3: value 'x' is not a number"):
        read_word_vectors(path)
    path.write_text("3 2\na 1 2\nb 3 4\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"declares 3 vectors but the file holds 2"):
        read_word_vectors(path)


def test_corpus_vectors_need_gensim(teacher, tokenizer) -> None:
    try:
        import gensim  # noqa: F401
    except ImportError:
        with pytest.raises(BertologyError, match="pip install gensim"):
            Augmenter(teacher, tokenizer, AugmentOptions(vectors="corpus"), corpus=[SENTENCE])
    else:
        options = AugmentOptions(vectors="corpus", p=1.0, copies=2)
        Augmenter(teacher, tokenizer, options, corpus=[SENTENCE, "the unbelievable dog"]).augment([SENTENCE])


def test_options_are_checked() -> None:
    with pytest.raises(ConfigError, match="'p'"):
        AugmentOptions(p=1.5)
    with pytest.raises(ConfigError, match="'top_k'"):
        AugmentOptions(top_k=0)


def test_replaced_share_matches_p(teacher, tokenizer) -> None:
    text = "the big cat sat on a small red mat . the dog ran to a blue car , a green tree and a house"
    options = AugmentOptions(p=0.4, copies=60, seed=3)
    augmenter = Augmenter(teacher, tokenizer, options)
    copies = augmenter.augment([text])[0]
    original = words_of(text)
    changed = total = 0
    for copy, _ in copies:
        for old, new in zip(original, words_of(copy), strict=True):
            if old.isalnum():
                total += 1
                changed += old != new
    assert total == augmenter.replaceable and changed == augmenter.replaced
    share, spread = changed / total, 3.29 * math.sqrt(0.4 * 0.6 / total)  # a 99.9% binomial interval
    assert abs(share - 0.4) < spread, (share, total)


def write_task(path: Path) -> Path:
    rows = [
        {"text": SENTENCE, "label": 1},
        {"text": "a big red car", "text_pair": "the dog ran", "label": "pos", "id": "x7"},
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def test_augment_file_writes_originals_and_copies_and_reuses(teacher, tokenizer, tmp_path) -> None:
    source = write_task(tmp_path / "train.jsonl")
    target = tmp_path / "out" / "train.aug.jsonl"
    options = AugmentOptions(copies=3, p=1.0)
    first = augment_file(source, target, teacher, tokenizer, options, progress=False)
    assert not first.reused and first.examples == 2 and first.written == 8
    rows = [json.loads(line) for line in target.read_text(encoding="utf-8").splitlines()]
    assert rows[0] == {"text": SENTENCE, "label": 1}
    assert [r["label"] for r in rows] == [1] * 4 + ["pos"] * 4
    assert all(r["text"] != SENTENCE for r in rows[1:4])
    pair_copies = rows[5:]
    assert all(r["id"] == "x7" and r["text_pair"] != "the dog ran" and r["text"] != "a big red car"
               for r in pair_copies)
    assert "text_pair" not in rows[1]
    sidecar = json.loads((tmp_path / "out" / "train.aug.jsonl.augment.json").read_text(encoding="utf-8"))
    assert len(sidecar["input_sha256"]) == 64 and sidecar["options"]["copies"] == 3
    assert not list((tmp_path / "out").glob("*.tmp"))

    stamp = target.stat().st_mtime_ns
    again = augment_file(source, target, teacher, tokenizer, options, progress=False)
    assert again.reused and again.written == 8 and target.stat().st_mtime_ns == stamp

    changed = augment_file(source, target, teacher, tokenizer, AugmentOptions(copies=2, p=1.0), progress=False)
    assert not changed.reused and changed.written == 6

    source.write_text(source.read_text(encoding="utf-8") + json.dumps({"text": "a cat", "label": 0}) + "\n",
                      encoding="utf-8")
    grown = augment_file(source, target, teacher, tokenizer, AugmentOptions(copies=2, p=1.0), progress=False)
    assert not grown.reused and grown.examples == 3


def test_augment_file_reads_tsv_and_names_bad_rows(teacher, tokenizer, tmp_path) -> None:
    source = tmp_path / "train.tsv"
    source.write_text("text\tlabel\nthe cat sat\t0\n", encoding="utf-8")
    result = augment_file(source, tmp_path / "aug.jsonl", teacher, tokenizer,
                          AugmentOptions(copies=1, p=0.0), progress=False)
    rows = [json.loads(line) for line in (tmp_path / "aug.jsonl").read_text(encoding="utf-8").splitlines()]
    assert result.written == 2 and rows == [{"text": "the cat sat", "label": "0"}] * 2
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "the cat", "label": 1}\n{"label": 2}\n', encoding="utf-8")
    with pytest.raises(DataError, match=r"bad\.jsonl:2: no text in field 'text'"):
        augment_file(bad, tmp_path / "aug2.jsonl", teacher, tokenizer, AugmentOptions(copies=1), progress=False)


def test_teacher_and_tokenizer_from_a_folder(teacher, tokenizer, tmp_path) -> None:
    folder = tmp_path / "teacher"
    teacher.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    options = AugmentOptions(copies=2, p=1.0, device="cpu")
    from_folder = Augmenter(folder, None, options).augment([SENTENCE])
    in_memory = Augmenter(teacher, tokenizer, options).augment([SENTENCE])
    assert from_folder == in_memory
