"""WordNet sentence-embedding sets: pointers and path similarity by hand, a seeded split by synset with no
synset in two splits, one right answer per query, and hard negatives that are co-hyponyms."""

from __future__ import annotations

import json

import pytest

from bertology.datasets.wordnet_pairs import (
    path_similarity,
    read_synsets,
    retrieval_records,
    split_synsets,
    training_records,
    usable,
    write_wordnet_pairs,
)

# a toy data.noun: entity <- animal <- {dog, cat}; dog also @ pet; "rex" an instance (@i) of dog
TOY = """  1 This software and database is being provided ... (license header)
00000001 03 n 01 entity 0 000 | that which exists
00000002 03 n 01 animal 0 001 @ 00000001 n 0000 | a living organism
00000003 05 n 02 dog 0 domestic_dog 0 002 @ 00000002 n 0000 @ 00000005 n 0000 | a barking animal; "the dog barked"
00000004 05 n 01 cat 0 001 @ 00000002 n 0000 | a purring animal
00000005 03 n 01 pet 0 001 @ 00000001 n 0000 | a kept animal
00000006 05 n 01 Rex 0 001 @i 00000003 n 0000 | a famous dog
"""


def test_pointers_queries_and_path_similarity_by_hand(tmp_path):
    path = tmp_path / "data.noun"
    path.write_text(TOY, encoding="utf-8")
    synsets = {s.key: s for s in read_synsets([path])}
    dog = synsets["n:00000003"]
    assert dog.query == "dog, domestic dog" and dog.definition == "a barking animal"
    assert dog.hypernyms == ["n:00000002", "n:00000005"] and synsets["n:00000006"].hypernyms == ["n:00000003"]
    parents = {k: s.hypernyms for k, s in synsets.items()}
    assert path_similarity("n:00000003", "n:00000004", parents) == pytest.approx(1 / 3)  # dog-animal-cat
    assert path_similarity("n:00000006", "n:00000005", parents) == pytest.approx(1 / 3)  # Rex-dog-pet
    assert path_similarity("n:00000006", "n:00000004", parents) == pytest.approx(1 / 4)  # Rex-dog-animal-cat
    assert path_similarity("n:00000003", "n:00000003", parents) == 1.0
    siblings = training_records([synsets[k] for k in ("n:00000003", "n:00000004", "n:00000005")], seed=0)
    assert {r["text"]: r["negative"] for r in siblings} == {"dog, domestic dog": "a purring animal",
                                                             "cat": "a barking animal"}  # pet has no co-hyponym


@pytest.fixture(scope="module")
def wordnet():
    return read_synsets()


def test_real_wordnet_synsets_and_dog_cat_path_similarity(wordnet):
    assert len(wordnet) == 117659  # WordNet 3.0's synset count
    by_key = {s.key: s for s in wordnet}
    dog, cat = by_key["n:02084071"], by_key["n:02121620"]
    assert dog.query == "dog, domestic dog, Canis familiaris"
    assert dog.definition.startswith("a member of the genus Canis")
    parents = {s.key: s.hypernyms for s in wordnet if s.pos == "n"}
    assert path_similarity(dog.key, cat.key, parents) == pytest.approx(0.2)  # dog-canine-carnivore-feline-cat


def test_split_by_synset_is_seeded_and_disjoint(wordnet):
    pool = usable(wordnet)
    definitions = [s.definition for s in pool]
    assert len(set(definitions)) == len(definitions) and all(definitions)  # one right answer per query
    splits = split_synsets(pool, seed=3, dev=200, test=300)
    keys = {name: {s.key for s in part} for name, part in splits.items()}
    assert len(keys["dev"]) == 200 and len(keys["test"]) == 300 and len(keys["train"]) == len(pool) - 500
    assert not (keys["dev"] & keys["test"]) and not (keys["train"] & (keys["dev"] | keys["test"]))
    again = split_synsets(pool, seed=3, dev=200, test=300)
    assert [s.key for s in again["test"]] == [s.key for s in splits["test"]]
    assert {s.key for s in split_synsets(pool, seed=4, dev=200, test=300)["test"]} != keys["test"]
    # every part of speech turns up in a random test split in about its share (nouns ~ 70%)
    nouns = sum(s.pos == "n" for s in splits["test"]) / 300
    assert abs(nouns - sum(s.pos == "n" for s in pool) / len(pool)) < 0.1
    records = retrieval_records(splits["test"])
    assert [r["id"] for r in records] == [s.key for s in splits["test"]]
    train = training_records(splits["train"][:5000], seed=0)
    by_definition = {s.definition: s for s in splits["train"][:5000]}
    for r in train[:300]:
        own, other = by_definition[r["positive"]], by_definition[r["negative"]]
        assert own.key != other.key and set(own.hypernyms) & set(other.hypernyms)  # a co-hyponym
    assert training_records(splits["train"][:5000], seed=0) == train


def test_written_files(tmp_path, wordnet):
    toy = tmp_path / "data.noun"
    toy.write_text(TOY, encoding="utf-8")
    stats = write_wordnet_pairs(tmp_path / "out", seed=0, dev=1, test=2, files=[toy])
    rows = {n: [json.loads(line) for line in (tmp_path / "out" / f"{n}.jsonl").read_text().splitlines()]
            for n in ("train", "dev", "test", "similarity_test")}
    assert len(rows["dev"]) == 1 and len(rows["test"]) == 2 and stats["usable"] == 6
    assert {r["id"] for r in rows["test"]}.isdisjoint(r["id"] for r in rows["dev"])
    assert all(0 < r["score"] <= 1 for r in rows["similarity_test"])
    assert "not human similarity judgments" in stats["similarity_score"]


def test_hard_negative_is_a_uniform_seeded_draw_among_co_hyponyms():
    from bertology.datasets.wordnet_pairs import Synset, similarity_records

    family = [Synset(f"n:{i}", "n", [f"w{i}"], f"definition {i}", ["n:0"]) for i in range(1, 5)]
    counts = {f"definition {i}": 0 for i in (2, 3, 4)}
    for seed in range(600):
        counts[training_records(family, seed=seed)[0]["negative"]] += 1
    assert all(abs(c - 200) < 4 * (600 * (1 / 3) * (2 / 3)) ** 0.5 for c in counts.values()), counts
    root = Synset("n:0", "n", ["root"], "the root", [])
    pairs = similarity_records(family, [root, *family], pairs=6, seed=1)
    assert pairs == similarity_records(family, [root, *family], pairs=6, seed=1)
    assert len(pairs) == 6 and all(p["score"] == pytest.approx(1 / 3) for p in pairs)  # siblings: 2 steps apart
