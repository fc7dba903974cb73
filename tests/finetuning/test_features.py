"""Encoding examples into features for every task kind, and collating them into padded batches."""

from __future__ import annotations

import math

import pytest
import torch

from bertology import BertConfig, BertModel
from bertology.errors import DataError
from bertology.finetuning.data import Example
from bertology.finetuning.features import Collator, encode
from bertology.finetuning.labels import LabelSet
from bertology.finetuning.model import HeadConfig, TaskModel
from bertology.finetuning.qa import answer_across_windows
from bertology.finetuning.tagging import IGNORE_INDEX
from bertology.tokenization import ByteLevelBPETokenizer, Tokenizer

WORDS = ("the a is on of and who what where did play ##ing ##ed cat ##s dog mat sat john ##son new york "
         "red fox jump ##s over lazy brown quick river bank paris city in , . ?").split()
VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS]

STORY = ("the quick brown fox jumps over the lazy dog . john sat on the mat in paris . the red cat is playing "
         "on the river bank . johnson jumped over the dog and the cats sat in new york city . the lazy dog "
         "is playing on the mat of the quick cat .")


@pytest.fixture(scope="module")
def tok(tmp_path_factory) -> Tokenizer:
    folder = tmp_path_factory.mktemp("vocab")
    (folder / "vocab.txt").write_text("\n".join(VOCAB) + "\n", encoding="utf-8")
    return Tokenizer.from_pretrained(folder / "vocab.txt")


def tokens(tok: Tokenizer, ids: list[int]) -> list[str]:
    return tok.convert_ids_to_tokens(ids)


# ------------------------------------------------------------------------------- sentence-level tasks


def test_classification_features_match_the_tokenizer(tok):
    examples = [Example("the cat sat", label="pos", source="f:2"),
                Example("who is john ?", "john is a cat", label="neg", source="f:3"),
                Example(STORY, label="pos", source="f:4")]
    labels = LabelSet(["neg", "pos"])
    features = encode(examples, tok, "classification", labels, max_length=16)
    for i, (example, feature) in enumerate(zip(examples, features, strict=True)):
        assert feature["input_ids"] == tok.encode(example.text, example.text_pair, max_length=16)
        assert feature["labels"] == labels.encode(example.label) and feature["example_index"] == i
        assert feature["attention_mask"] == [1] * len(feature["input_ids"])
    pair = features[1]
    first_sep = pair["input_ids"].index(tok.sep_token_id)
    assert pair["token_type_ids"] == [0] * (first_sep + 1) + [1] * (len(pair["input_ids"]) - first_sep - 1)
    assert len(features[2]["input_ids"]) == 16
    assert "labels" not in encode(examples, tok, "classification", None)[0]  # prediction: no label set


def test_regression_and_multi_label_targets(tok):
    features = encode([Example("a cat", label=0.25), Example("a dog", label=4.0)], tok, "regression")
    assert [f["labels"] for f in features] == [0.25, 4.0]
    labels = LabelSet(["animal", "city", "colour"])
    [feature] = encode([Example("red cat", label=["colour", "animal"])], tok, "classification", labels)
    assert feature["labels"] == [1.0, 0.0, 1.0]


def test_unknown_label_at_encoding_names_the_row(tok):
    with pytest.raises(DataError, match=r"dev\.csv:9: unknown label 'maybe'.*\['neg', 'pos'\]"):
        encode([Example("a", label="maybe", source="dev.csv:9")], tok, "classification", LabelSet(["neg", "pos"]))


# --------------------------------------------------------------------------------------------- tagging


def test_tagging_first_piece_gets_the_tag(tok):
    words = ["Johnson", "playing", "cats", "in", "New", "York"]
    tags = ["B-PER", "O", "O", "O", "B-LOC", "I-LOC"]
    labels = LabelSet(["B-LOC", "B-PER", "I-LOC", "I-PER", "O"])
    [feature] = encode([Example(words, label=tags)], tok, "tagging", labels, max_length=32)
    pieces, word_ids = tokens(tok, feature["input_ids"]), feature["word_ids"]
    assert pieces == ["[CLS]", "john", "##son", "play", "##ing", "cat", "##s", "in", "new", "york", "[SEP]"]
    # pieces of each word, glued back, spell the (lower-cased) word
    for w, word in enumerate(words):
        glued = "".join(p.removeprefix("##") for p, i in zip(pieces, word_ids, strict=True) if i == w)
        assert glued == word.lower()
    expected = []
    for position, word in enumerate(word_ids):
        first = word is not None and (position == 0 or word_ids[position - 1] != word)
        expected.append(labels.encode(tags[word]) if first else IGNORE_INDEX)
    assert feature["labels"] == expected
    assert sum(label != IGNORE_INDEX for label in feature["labels"]) == len(words)
    assert feature["num_words"] == len(words)

    [every] = encode([Example(words, label=tags)], tok, "tagging", labels, label_all_pieces=True)
    assert [labels.names[i] for i in every["labels"][1:3]] == ["B-PER", "I-PER"]  # Johnson: B- then I-
    with pytest.raises(DataError, match="I-PER"):
        encode([Example(words, label=tags, source="t:1")], tok, "tagging", LabelSet(["B-LOC", "B-PER", "I-LOC", "O"]),
               label_all_pieces=True)


def test_tagging_truncation_keeps_whole_words_and_counts_losses(tok):
    words = ["john", "playing", "cats", "on", "the", "mat"]  # pieces: 1, 2, 2, 1, 1, 1
    labels = LabelSet(["O"])
    examples = [Example(words, label=["O"] * 6), Example(["cats"], label=["O"])]
    features = encode(examples, tok, "tagging", labels, max_length=6)  # room for 4 pieces
    cut = features[0]
    assert tokens(tok, cut["input_ids"]) == ["[CLS]", "john", "play", "##ing", "[SEP]"]  # not half of "cats"
    assert cut["word_ids"] == [None, 0, 1, 1, None]
    assert features.stats["words_lost"] == 4 and features.stats["truncated_examples"] == 1
    tiny = encode([Example(["cats", "sat"], label=["O", "O"])], tok, "tagging", labels, max_length=3)
    assert tokens(tok, tiny[0]["input_ids"]) == ["[CLS]", "cat", "[SEP]"]  # a word longer than the room is cut
    assert tiny.stats["words_lost"] == 1


def test_tagging_with_byte_level_bpe_matches_running_text():
    corpus = [STORY] * 20
    bpe = ByteLevelBPETokenizer.train(corpus, vocab_size=300, min_frequency=2)
    words = "the lazy dog sat on the mat".split()
    [feature] = encode([Example(words)], bpe, "tagging", None, max_length=64)
    assert feature["input_ids"] == bpe.encode(" ".join(words))  # each word keeps its leading-space marker
    assert [w for w in feature["word_ids"] if w is not None][-1] == len(words) - 1


# -------------------------------------------------------------------------------------------------- QA


def fake_windows(features: list[dict]) -> list[dict]:
    """Logits that point at each window's gold span (flat where the window has none)."""
    windows = []
    for feature in features:
        n = len(feature["input_ids"])
        start, end = [0.0] * n, [0.0] * n
        if feature["start_positions"]:
            start[feature["start_positions"]] = 10.0
            end[feature["end_positions"]] = 10.0
        windows.append({"start_logits": start, "end_logits": end, "offsets": feature["offsets"],
                        "context_mask": [o is not None for o in feature["offsets"]]})
    return windows


@pytest.mark.parametrize("answer", ["the quick brown fox", "johnson", "new york city", "quick cat"])
def test_qa_windows_round_trip(tok, answer):
    start = STORY.index(answer) if answer != "quick cat" else STORY.rindex(answer)
    example = Example(STORY, "who sat on the mat in paris ?", answers=[{"text": answer, "start": start}])
    max_length, stride, max_query = 24, 4, 5
    features = encode([example], tok, "qa", max_length=max_length, doc_stride=stride, max_query_length=max_query)
    assert len(features) >= 3 and features.stats["examples_with_several_windows"] == 1
    question_tokens = [tokens(tok, f["input_ids"])[1 : max_query + 1] for f in features]
    assert question_tokens[0] == ["who", "sat", "on", "the", "mat"]  # cut to max_query_length
    spans = [[o for o in f["offsets"] if o is not None] for f in features]
    for feature in features:
        assert len(feature["input_ids"]) <= max_length and feature["example_index"] == 0
        types = feature["token_type_ids"]
        assert all(o is None for o, t in zip(feature["offsets"], types, strict=True) if t == 0)
        assert types == [0] * (types.index(1)) + [1] * (len(types) - types.index(1))  # every window: question 0s
        assert feature["offsets"][types.index(1)] is not None  # ... then the context as the second segment
    for left, right in zip(spans, spans[1:], strict=False):
        assert left[-stride:] == right[:stride]  # consecutive windows share doc_stride tokens
    assert spans[0][0][0] == 0 and spans[-1][-1][1] == len(STORY.rstrip())
    hits = 0
    for feature in features:
        s, e = feature["start_positions"], feature["end_positions"]
        if (s, e) != (0, 0):
            hits += 1
            assert STORY[feature["offsets"][s][0] : feature["offsets"][e][1]] == answer
    assert hits >= 1
    assert answer_across_windows(fake_windows(features), STORY) == answer


def test_qa_doc_stride_too_large_is_clamped_with_a_warning(tok):
    example = Example(STORY, "who ?", answers=[{"text": "paris", "start": STORY.index("paris")}])
    with pytest.warns(UserWarning, match="doc_stride=128"):
        features = encode([example], tok, "qa", max_length=24, doc_stride=128, max_query_length=5)
    assert len(features) >= 3
    assert answer_across_windows(fake_windows(features), STORY) == "paris"
    unlabelled = encode([Example(STORY, "who ?")], tok, "qa", max_length=24, doc_stride=4, max_query_length=5)
    assert "start_positions" not in unlabelled[0]


# ------------------------------------------------------------------------------------- multiple choice


def test_multiple_choice_rows(tok):
    examples = [Example("who sat ?", choices=["john", "the cat", "a dog"], label=1),
                Example("where ?", "john sat in paris .", choices=["paris", "new york", "the mat"], label=0)]
    features = encode(examples, tok, "multiple_choice", max_length=32)
    for example, feature in zip(examples, features, strict=True):
        assert len(feature["input_ids"]) == feature["num_choices"] == 3 and feature["labels"] == example.label
        for row, choice in zip(feature["input_ids"], example.choices, strict=True):
            if example.text_pair:
                assert row == tok.encode(example.text_pair, f"{example.text} {choice}")
            else:
                assert row == tok.encode(example.text, choice)
    with pytest.raises(DataError, match="same number"):
        encode([examples[0], Example("q", choices=["a", "b"], source="m:3")], tok, "multiple_choice")


# -------------------------------------------------------------------------------------------- collator


def test_collator_pads_to_the_longest(tok):
    examples = [Example("the cat", label="a"), Example("the lazy dog sat on the mat", label="b")]
    features = encode(examples, tok, "classification", LabelSet(["a", "b"]))
    batch = Collator(tok.pad_token_id, "classification")(features)
    assert set(batch) == {"input_ids", "token_type_ids", "attention_mask", "labels"}
    lengths = [len(f["input_ids"]) for f in features]
    assert batch["input_ids"].shape == (2, max(lengths))
    assert batch["attention_mask"].sum(1).tolist() == lengths
    assert batch["input_ids"][0, lengths[0]:].eq(tok.pad_token_id).all()
    assert batch["labels"].tolist() == [0, 1] and batch["labels"].dtype == torch.long
    regression = Collator(0, "regression")([{"input_ids": [2, 3], "labels": 0.5}])
    assert regression["labels"].dtype == torch.float


def test_collator_tagging_qa_and_choices(tok):
    labels = LabelSet(["B-PER", "O"])
    tagged = encode([Example(["john"], label=["B-PER"]), Example(["the", "cats", "sat"], label=["O"] * 3)],
                    tok, "tagging", labels)
    batch = Collator(tok.pad_token_id, "tagging")(tagged)
    assert batch["labels"].shape == batch["input_ids"].shape == (2, 6)
    assert batch["labels"][0].tolist() == [IGNORE_INDEX, 0, IGNORE_INDEX, IGNORE_INDEX, IGNORE_INDEX, IGNORE_INDEX]
    assert "word_ids" not in batch

    qa = encode([Example(STORY, "who ?", answers=[{"text": "paris", "start": STORY.index("paris")}])], tok, "qa",
                max_length=24, doc_stride=4, max_query_length=5)
    batch = Collator(tok.pad_token_id, "qa")(list(qa))
    assert batch["start_positions"].shape == (len(qa),) and "offsets" not in batch

    choices = encode([Example("who ?", choices=["john", "the lazy dog"], label=1),
                      Example("where is the cat ?", choices=["paris", "york"], label=0)], tok, "multiple_choice")
    batch = Collator(tok.pad_token_id, "multiple_choice")(choices)
    longest = max(len(r) for f in choices for r in f["input_ids"])
    assert batch["input_ids"].shape == (2, 2, longest) and batch["labels"].tolist() == [1, 0]
    assert batch["attention_mask"][0, 0].sum() == len(choices[0]["input_ids"][0])

    with pytest.raises(ValueError, match="labelled and unlabelled"):
        Collator(0, "tagging")([tagged[0], {k: v for k, v in tagged[1].items() if k != "labels"}])


def test_collator_stacks_and_pads_cached_features():
    features = [{"input_ids": [2, 5, 3], "cached": torch.ones(4, 3, 8)},
                {"input_ids": [2, 3], "cached": torch.ones(4, 2, 8)}]
    batch = Collator(0, "tagging")(features)
    assert batch["cached"].shape == (2, 4, 3, 8)
    assert batch["cached"][1, :, 2].abs().sum() == 0 and batch["cached"][1, :, :2].eq(1).all()


@pytest.mark.parametrize("kind", ["classification", "regression", "tagging", "qa", "multiple_choice"])
def test_collated_batches_train_a_task_model(tok, kind):
    """The collator's keys are what TaskModel takes, and each kind yields a finite loss."""
    torch.manual_seed(0)
    encoder = BertModel(BertConfig(vocab_size=len(VOCAB), hidden_size=16, num_hidden_layers=2,
                                   num_attention_heads=2, intermediate_size=32, max_position_embeddings=64))
    labels = None
    if kind in ("classification", "regression"):
        names = ["neg", "pos"] if kind == "classification" else []
        examples = [Example("the cat sat", label="pos" if names else 1.0), Example(STORY, label="neg" if names else 0.)]
        labels = LabelSet(names) if names else None
    elif kind == "tagging":
        examples = [Example(["john", "sat"], label=["B-PER", "O"]), Example(["cats"], label=["O"])]
        labels = LabelSet(["B-PER", "O"])
    elif kind == "qa":
        examples = [Example(STORY, "who ?", answers=[{"text": "paris", "start": STORY.index("paris")}])]
    else:
        examples = [Example("who ?", choices=["john", "a cat", "the dog"], label=2)] * 2
    features = encode(examples, tok, kind, labels, max_length=24, doc_stride=4, max_query_length=5)
    model = TaskModel(encoder, {"t": HeadConfig(kind=kind, labels=list(labels or []))})
    output = model(**Collator(tok.pad_token_id, kind)(features))
    assert math.isfinite(float(output.losses["loss"].detach()))
