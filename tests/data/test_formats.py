"""Input formats: lengths, boundaries, segment ids and sentence-task labels, checked against the source."""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from bertology.data.formats import FormatConfig, PretrainingDataset, Specials, split_documents
from bertology.errors import ConfigError

sys.path.insert(0, str(Path(__file__).parent))
from fake_corpus import FakeCorpus, numbered_documents  # noqa: E402

SP = Specials(cls=2, sep=3, pad=0)


def _dataset(fmt, task=None, max_length=32, docs=None, short=0.0, case=False, seed=0):
    corpus = FakeCorpus(docs or numbered_documents(12, 8), case=case)
    config = FormatConfig(format=fmt, max_length=max_length, short_seq_prob=short, pair_task=task)
    return corpus, PretrainingDataset(corpus, config, SP, np.arange(corpus.num_documents), seed)


@pytest.mark.parametrize("fmt", ["full_sentences", "doc_sentences"])
def test_packed_formats_keep_every_token_in_order_within_the_limit(fmt):
    corpus, ds = _dataset(fmt)
    stream = []
    for i in range(len(ds)):
        item = ds[i]
        ids = item["input_ids"]
        assert len(ids) <= 32 and ids[0] == SP.cls and ids[-1] == SP.sep
        assert (item["token_type_ids"] == 0).all()
        assert item["maskable"].sum() == np.isin(ids, [SP.cls, SP.sep], invert=True).sum()
        stream.extend(int(t) for t in ids[1:-1] if t != SP.sep)
    # all tokens of the corpus appear exactly once, in corpus order (no sentence here exceeds the limit)
    assert stream == [int(t) for s in corpus.sentences for t in s]


def test_doc_sentences_never_cross_documents_but_full_sentences_do():
    corpus, doc_ds = _dataset("doc_sentences")
    _, full_ds = _dataset("full_sentences")
    doc_of = {10 + k % 80: k // 8 for k in range(96)}
    for i in range(len(doc_ds)):
        ids = doc_ds[i]["input_ids"]
        assert len({doc_of[int(t)] for t in ids if t > 3}) == 1
    crossing = [full_ds[i] for i in range(len(full_ds))
                if len({doc_of[int(t)] for t in full_ds[i]["input_ids"] if t > 3}) > 1]
    assert crossing and all((item["input_ids"][1:-1] == SP.sep).any() for item in crossing)  # [SEP] between docs
    assert len(full_ds) < len(doc_ds)  # packing across documents wastes less


def test_a_sentence_longer_than_the_limit_is_split_not_lost():
    docs = [[[10] * 70], [[12] * 5]]
    corpus, ds = _dataset("full_sentences", max_length=32, docs=docs)
    total = sum(int((ds[i]["input_ids"] == 10).sum()) for i in range(len(ds)))
    assert total == 70


@pytest.mark.parametrize("fmt", ["segment_pair", "sentence_pair"])
@pytest.mark.parametrize("task,classes", [("nsp", 2), ("sop", 2), ("order", 3), ("distance", 3)])
def test_pair_tasks_labels_match_where_b_came_from(task, classes, fmt):
    # documents longer than one instance, so a "same document, not adjacent" segment exists
    corpus, ds = _dataset(fmt, task=task, max_length=32, docs=numbered_documents(6, 12))
    sentence_id = lambda tok: int(tok) - 10  # noqa: E731  (document * 12 + sentence, for these small corpora)
    labels = Counter()
    for i in range(len(ds)):
        item = ds[i]
        ids, seg = item["input_ids"], item["token_type_ids"]
        seps = np.flatnonzero(ids == SP.sep)
        assert ids[0] == SP.cls and len(seps) == 2 and seps[-1] == len(ids) - 1
        assert (seg[: seps[0] + 1] == 0).all() and (seg[seps[0] + 1:] == 1).all()
        a = [sentence_id(t) for t in ids[1:seps[0]]]
        b = [sentence_id(t) for t in ids[seps[0] + 1:seps[1]]]
        label = item["sentence_label"]
        labels[label] += 1
        same_doc = a[0] // 12 == b[0] // 12
        plan_a, plan_b, plan_label = ds.plans[i]  # sentence ids before truncation
        assert plan_label == label
        adjacent = plan_b[0] == plan_a[-1] + 1
        if task == "nsp":
            assert same_doc == (label == 0) and adjacent == (label == 0)
        elif task == "sop":
            assert same_doc
            assert (plan_b[0] == plan_a[-1] + 1) == (label == 0) and (plan_a[0] == plan_b[-1] + 1) == (label == 1)
        elif task == "order":
            assert same_doc == (label in (0, 1))
            assert (label == 0) == adjacent and (label == 1) == (plan_a[0] == plan_b[-1] + 1)
        else:
            assert same_doc == (label in (0, 1))
            if label == 0:
                assert adjacent
            if label == 1:
                assert plan_b[0] > plan_a[-1] + 1 or plan_b[-1] < plan_a[0] - 1
    assert set(labels) == set(range(classes))  # every class occurs


def test_pair_truncation_respects_the_limit_and_sentence_pairs_are_single_sentences():
    corpus, ds = _dataset("segment_pair", task="nsp", max_length=16)
    assert all(len(ds[i]["input_ids"]) <= 16 for i in range(len(ds)))
    corpus, ds = _dataset("sentence_pair", task="nsp", max_length=64)
    assert len(ds) == corpus.num_sentences // 2  # every sentence used once, two per instance (8 per document)
    labels = Counter(ds[i]["sentence_label"] for i in range(len(ds)))
    assert labels[0] > 0.3 * len(ds) and labels[1] > 0.3 * len(ds)
    for i in range(len(ds)):
        ids = ds[i]["input_ids"]
        seps = np.flatnonzero(ids == SP.sep)
        assert len(set(ids[1:seps[0]].tolist())) == 1 and len(set(ids[seps[0] + 1:-1].tolist())) == 1


def test_plans_are_deterministic_and_seed_dependent():
    _, a = _dataset("segment_pair", task="nsp", short=0.3, seed=1)
    _, b = _dataset("segment_pair", task="nsp", short=0.3, seed=1)
    _, c = _dataset("segment_pair", task="nsp", short=0.3, seed=2)
    assert a.plans == b.plans and a.plans != c.plans
    assert all((a[i]["input_ids"] == b[i]["input_ids"]).all() for i in range(len(a)))


def test_short_sequence_probability_makes_short_instances():
    _, long_only = _dataset("full_sentences", max_length=64, short=0.0)
    _, some_short = _dataset("full_sentences", max_length=64, short=0.5)
    mean = lambda ds: np.mean([len(ds[i]["input_ids"]) for i in range(len(ds))])  # noqa: E731
    assert mean(some_short) < 0.8 * mean(long_only)


def test_case_labels_follow_tokens_and_specials_are_ignored():
    corpus, ds = _dataset("full_sentences", case=True)
    item = ds[0]
    ids, case = item["input_ids"], item["case_labels"]
    special = np.isin(ids, [SP.cls, SP.sep])
    assert (case[special] == -100).all()
    assert (case[~special] == ids[~special] % 5).all()


def test_split_documents_is_a_seeded_partition():
    train, held = split_documents(100, 0.1, seed=3)
    assert len(held) == 10 and len(train) == 90 and not set(train) & set(held)
    again, _ = split_documents(100, 0.1, seed=3)
    other, _ = split_documents(100, 0.1, seed=4)
    assert (train == again).all() and not (train == other).all()


def test_format_config_errors_name_the_file_and_key_path():
    from bertology.utils.typed import Where, parse

    where = Where("run.yaml", ["data"])
    with pytest.raises(ConfigError, match=r"^run.yaml: data: unknown field 'formt'; did you mean 'format'\?"):
        parse(FormatConfig, {"formt": "full_sentences"}, where)
    with pytest.raises(ConfigError, match=r"^run.yaml: data: field 'format' .*did you mean 'doc_sentences'\?"):
        parse(FormatConfig, {"format": "doc_sentence"}, where)
    with pytest.raises(ConfigError, match=r"^run.yaml: data: field 'max_length' must be at least 8"):
        parse(FormatConfig, {"max_length": 4}, where)
    with pytest.raises(ConfigError, match=r"^run.yaml: data: field 'eval_fraction' must be float"):
        parse(FormatConfig, {"eval_fraction": "some"}, where)


def test_bad_format_configs_name_the_field():
    with pytest.raises(ConfigError, match="format"):
        FormatConfig(format="pairs")
    with pytest.raises(ConfigError, match="needs a pair format"):
        FormatConfig(format="full_sentences", pair_task="nsp")
    with pytest.raises(ConfigError, match="max_length"):
        FormatConfig(max_length=4)
    corpus = FakeCorpus(numbered_documents(3, 3))
    with pytest.raises(ConfigError, match="sentence-pair objective"):
        PretrainingDataset(corpus, FormatConfig(format="segment_pair"), SP, np.arange(3))


@pytest.mark.parametrize("fmt", ["doc_sentences", "sentence_pair"])
def test_instances_mark_sentence_starts_and_their_document(fmt):
    corpus = FakeCorpus(numbered_documents(6, 5))
    data = PretrainingDataset(corpus, FormatConfig(format=fmt, max_length=64, short_seq_prob=0.0,
                                                   pair_task="nsp" if fmt == "sentence_pair" else None),
                              Specials(cls=1, sep=2, pad=0), np.arange(6), seed=0)
    for i in range(len(data)):
        item = data[i]
        ids, starts = item["input_ids"], item["sentence_starts"]
        assert len(starts) == len(ids) and not starts[0]
        # numbered documents: a sentence is a run of one id, so a start is where the id changes after a
        # special token or another sentence
        for k in np.flatnonzero(starts):
            assert ids[k] > 2 and (ids[k - 1] != ids[k])
        first_sentence = next(s for s in range(corpus.num_sentences) if 10 + s % 80 == ids[1])
        assert item["document"] == corpus.document_of_sentence(first_sentence)
