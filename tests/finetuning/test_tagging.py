"""Entity decoding, entity-level scores and word-piece label alignment."""

from __future__ import annotations

import pytest

from bertology.finetuning.tagging import IGNORE_INDEX, align_labels, entities, entity_scores


def test_bio_entities_lenient() -> None:
    tags = ["I-PER", "I-PER", "O", "B-LOC", "I-ORG", "B-MISC", "B-MISC", "I-MISC"]
    assert entities(tags) == [
        ("PER", 0, 2),  # orphan I- opens an entity
        ("LOC", 3, 4),
        ("ORG", 4, 5),  # type change closes LOC and opens ORG
        ("MISC", 5, 6),  # B- after B- of the same type: two entities
        ("MISC", 6, 8),
    ]
    assert entities([]) == []
    assert entities(["O", "O"]) == []


def test_bioes_entities() -> None:
    tags = ["S-PER", "O", "B-LOC", "I-LOC", "E-LOC", "B-ORG", "E-ORG", "S-MISC"]
    assert entities(tags, "BIOES") == [("PER", 0, 1), ("LOC", 2, 5), ("ORG", 5, 7), ("MISC", 7, 8)]


def test_bioes_invalid_sequences_do_not_crash() -> None:
    assert entities(["B-PER", "O"], "BIOES") == [("PER", 0, 1)]  # unclosed B-
    assert entities(["I-PER", "E-PER"], "BIOES") == [("PER", 0, 2)]  # missing B-
    assert entities(["E-PER", "E-PER"], "BIOES") == [("PER", 0, 1), ("PER", 1, 2)]
    assert entities(["B-PER", "E-LOC"], "BIOES") == [("PER", 0, 1), ("LOC", 1, 2)]
    assert entities(["B-PER", "I-PER"], "BIOES") == [("PER", 0, 2)]  # runs to the end


def test_malformed_tags_raise() -> None:
    with pytest.raises(ValueError):
        entities(["S-PER"], "BIO")
    with pytest.raises(ValueError):
        entities(["PER"])
    with pytest.raises(ValueError):
        entities(["O"], "IOB3")


def test_entity_scores_hand_worked() -> None:
    gold = [
        ["B-PER", "I-PER", "O", "B-LOC"],
        ["O", "B-ORG", "I-ORG", "I-ORG", "O", "B-PER"],
        ["O", "O"],
    ]
    pred = [
        ["B-PER", "I-PER", "O", "B-ORG"],
        ["O", "B-ORG", "I-ORG", "O", "O", "I-PER"],
        ["B-LOC", "O"],
    ]
    # Sentence 0: gold PER(0,2) LOC(3,4); pred PER(0,2) ORG(3,4)  -> TP PER; FP ORG; FN LOC
    # Sentence 1: gold ORG(1,4) PER(5,6); pred ORG(1,3) PER(5,6)  -> TP PER (orphan I- is lenient);
    #             FP ORG(1,3) and FN ORG(1,4) (wrong boundary counts twice)
    # Sentence 2: gold none; pred LOC(0,1)                          -> FP LOC
    # Overall: TP=2, FP=3, FN=2 -> P=2/5=0.4, R=2/4=0.5, F1=2*0.4*0.5/0.9=4/9
    # PER: TP=2 FP=0 FN=0 -> 1, 1, 1
    # LOC: TP=0 FP=1 FN=1 -> 0, 0, 0
    # ORG: TP=0 FP=2 FN=1 -> 0, 0, 0
    s = entity_scores(gold, pred)
    assert (s["tp"], s["fp"], s["fn"], s["support"]) == (2, 3, 2, 4)
    assert s["precision"] == pytest.approx(0.4)
    assert s["recall"] == pytest.approx(0.5)
    assert s["f1"] == pytest.approx(4 / 9)
    assert set(s["per_type"]) == {"PER", "LOC", "ORG"}
    per = s["per_type"]
    assert (per["PER"]["precision"], per["PER"]["recall"], per["PER"]["f1"]) == (1.0, 1.0, 1.0)
    assert (per["LOC"]["tp"], per["LOC"]["fp"], per["LOC"]["fn"], per["LOC"]["f1"]) == (0, 1, 1, 0.0)
    assert (per["ORG"]["tp"], per["ORG"]["fp"], per["ORG"]["fn"], per["ORG"]["f1"]) == (0, 2, 1, 0.0)


def test_entity_scores_bioes_and_perfect() -> None:
    gold = [["S-PER", "O", "B-LOC", "E-LOC"]]
    s = entity_scores(gold, gold, "BIOES")
    assert (s["tp"], s["fp"], s["fn"], s["f1"]) == (2, 0, 0, 1.0)
    # Predicting LOC as two single tokens: 1 TP (PER), 2 FP, 1 FN -> P=1/3, R=1/2, F1=0.4
    s = entity_scores(gold, [["S-PER", "O", "S-LOC", "S-LOC"]], "BIOES")
    assert (s["tp"], s["fp"], s["fn"]) == (1, 2, 1)
    assert s["f1"] == pytest.approx(0.4)


def test_entity_scores_length_mismatch() -> None:
    with pytest.raises(ValueError):
        entity_scores([["O"]], [["O", "O"]])
    with pytest.raises(ValueError):
        entity_scores([["O"]], [])


LABEL2ID = {"O": 0, "B-PER": 1, "I-PER": 2, "B-LOC": 3, "I-LOC": 4}
# "Johanson lives in New Washington" with a WordPiece tokenizer:
# [CLS] Johan ##son lives in New Wash ##ing ##ton [SEP]; word_ids() as a fast tokenizer returns them.
WORDS = ["Johanson", "lives", "in", "New", "Washington"]
WORD_LABELS = ["B-PER", "O", "O", "B-LOC", "I-LOC"]
WORD_IDS = [None, 0, 0, 1, 2, 3, 4, 4, 4, None]


def test_align_labels_first_piece_only() -> None:
    x = IGNORE_INDEX
    assert align_labels(WORD_LABELS, WORD_IDS, LABEL2ID) == [x, 1, x, 0, 0, 3, 4, x, x, x]


def test_align_labels_all_pieces() -> None:
    x = IGNORE_INDEX
    got = align_labels(WORD_LABELS, WORD_IDS, LABEL2ID, label_all_pieces=True)
    # ##son continues B-PER as I-PER; Wash/##ing/##ton all stay I-LOC.
    assert got == [x, 1, 2, 0, 0, 3, 4, 4, 4, x]


def test_align_labels_sentence_pair_word_ids_restart() -> None:
    # Word ids restart at 0 in the second sequence; the None between them keeps pieces apart.
    x = IGNORE_INDEX
    got = align_labels(["B-PER"], [None, 0, None, 0, None], LABEL2ID, label_all_pieces=True)
    assert got == [x, 1, x, 1, x]
