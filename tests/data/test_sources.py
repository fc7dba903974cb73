"""Document readers: each format splits documents as documented, and bad lines are counted, never fatal."""

from __future__ import annotations

import gzip
import itertools
import json

import pytest

from bertology import assets
from bertology.data.sources import SkipLog, iter_documents, list_input_files, parse_pku_line


def _docs(paths, **kwargs):
    log = SkipLog()
    docs = list(iter_documents(list_input_files(paths), log, **kwargs))
    return docs, log


def test_text_blocks_split_on_blank_lines_with_locations(tmp_path):
    f = tmp_path / "a.txt"
    f.write_text("First doc line one.\nline two.\n\n\n   \nSecond doc.\n\t\nThird doc\n", encoding="utf-8")
    docs, log = _docs([f])
    assert [d.text for d in docs] == ["First doc line one.\nline two.", "Second doc.", "Third doc"]
    assert [d.location for d in docs] == [f"{f}:1", f"{f}:6", f"{f}:8"]
    assert log.total == 0


def test_doc_per_file_and_doc_per_line(tmp_path):
    (tmp_path / "x.txt").write_text("one\n\ntwo\n", encoding="utf-8")
    (tmp_path / "y.txt").write_text("\n  \n", encoding="utf-8")
    docs, log = _docs([tmp_path], doc_per_file=True)
    assert [d.text for d in docs] == ["one\n\ntwo"]
    assert log.counts["empty_document"] == 1 and log.examples["empty_document"] == [f"{tmp_path / 'y.txt'}:1"]

    docs, log = _docs([tmp_path / "x.txt"], doc_per_line=True)
    assert [d.text for d in docs] == ["one", "two"]
    assert log.counts["empty_document"] == 1  # the blank line is an empty document, counted

    with pytest.raises(ValueError, match="at most one"):
        _docs([tmp_path], doc_per_file=True, doc_per_line=True)


def test_jsonl_records_and_every_bad_line_counted_with_location(tmp_path):
    f = tmp_path / "c.jsonl"
    lines = [
        json.dumps({"text": "Good one.", "id": 1}),
        "{not json",
        json.dumps({"body": "no text field"}),
        json.dumps({"text": 42}),
        json.dumps({"text": "   "}),
        "",
        json.dumps(["a list"]),
        '{"text": "lone \\ud800 surrogate"}',
        json.dumps({"text": "Good two 你好"}, ensure_ascii=False),
    ]
    f.write_text("\n".join(lines) + "\n", encoding="utf-8")
    docs, log = _docs([f], input_format="jsonl")
    assert [d.text for d in docs] == ["Good one.", "Good two 你好"]
    assert [d.location for d in docs] == [f"{f}:1", f"{f}:9"]
    assert dict(log.counts) == {"jsonl_invalid_json": 1, "jsonl_missing_field": 2, "jsonl_field_not_text": 1,
                                "empty_document": 1, "invalid_utf8": 1}
    assert log.examples["jsonl_missing_field"] == [f"{f}:3", f"{f}:7"]
    assert log.examples["jsonl_invalid_json"] == [f"{f}:2"]

    other, _ = _docs([f], input_format="jsonl", text_field="body")
    assert [d.text for d in other] == ["no text field"]


def test_pku_lines_strip_tags_brackets_and_ids():
    line = "19980101-01-001-002/m  [中共/nt  中央/n]nt  总书记/n  、/w  [/w  ]/w  江/nr  泽民/nr\n"
    assert parse_pku_line(line) == "中共中央总书记、[]江泽民"
    assert parse_pku_line("迈向/v  充满/v  希望/n") == "迈向充满希望"
    assert parse_pku_line("   \n") == ""


def test_peoples_daily_documents_equal_the_words_joined(tmp_path):
    sample = tmp_path / "pd.txt"
    with open(assets.peoples_daily_path(), encoding="utf-8") as src:
        sample.write_text("".join(itertools.islice(src, 2000)), encoding="utf-8")
    docs, log = _docs([sample], input_format="pku")
    expected = ["".join(words) for words in itertools.islice(assets.peoples_daily_sentences(), 2000)]
    assert [d.text for d in docs] == expected
    assert len(docs) == 2000 and log.total == 0


def test_gzip_and_folders_recursive_sorted_hidden_skipped(tmp_path):
    root = tmp_path / "corpus"
    (root / "b" / "deeper").mkdir(parents=True)
    (root / ".hidden").mkdir()
    (root / "a.txt").write_text("doc a\n", encoding="utf-8")
    (root / "b" / "deeper" / "c.txt").write_text("doc c\n", encoding="utf-8")
    (root / ".hidden" / "x.txt").write_text("hidden\n", encoding="utf-8")
    (root / ".skip.txt").write_text("hidden\n", encoding="utf-8")
    with gzip.open(root / "b" / "b.txt.gz", "wt", encoding="utf-8") as handle:
        handle.write("doc b1\n\ndoc b2\n")
    files = list_input_files([root])
    assert [p.relative_to(root).as_posix() for p in files] == ["a.txt", "b/b.txt.gz", "b/deeper/c.txt"]
    docs, _ = _docs([root])
    assert [d.text for d in docs] == ["doc a", "doc b1", "doc b2", "doc c"]
    with pytest.raises(FileNotFoundError, match="does not exist"):
        list_input_files([root / "missing.txt"])


def test_bad_lines_are_skipped_and_counted_never_fatal(tmp_path):
    f = tmp_path / "bad.txt"
    long_line = b"x" * 200_000
    f.write_bytes(
        b"\xef\xbb\xbfGood first line.\r\n"       # BOM and CRLF are tolerated
        b"bad \xff\xfe utf8\n"                    # line 2: invalid UTF-8
        b"still doc one\n"
        b"\n"
        b"bin\x00ary\x00junk\n"                   # line 5: NUL bytes
        + long_line + b"\n"                       # line 6: too long
        + b"\x01\x02\x03\x04\x05\x06ab\n"         # line 7: mostly control characters
        b"Doc two.\n"
        + long_line                               # line 9: too long, no newline at the end
    )
    docs, log = _docs([f])
    assert [d.text for d in docs] == ["Good first line.\nstill doc one", "Doc two."]
    assert dict(log.counts) == {"invalid_utf8": 1, "binary": 2, "line_too_long": 2}
    assert log.examples["invalid_utf8"] == [f"{f}:2"]
    assert log.examples["binary"] == [f"{f}:5", f"{f}:7"]
    assert log.examples["line_too_long"] == [f"{f}:6", f"{f}:9"]
    # A lower limit counts by characters, not bytes: 3-byte characters do not trip it early.
    g = tmp_path / "cjk.txt"
    g.write_text("中" * 50 + "\n" + "中" * 51 + "\n", encoding="utf-8")
    docs, log = _docs([g], max_line_chars=50)
    assert [d.text for d in docs] == ["中" * 50] and log.counts["line_too_long"] == 1


def test_truncated_gzip_keeps_what_was_read_and_counts_the_file(tmp_path):
    f = tmp_path / "cut.txt.gz"
    payload = gzip.compress("".join(f"Document {i}.\n\n" for i in range(5000)).encode())
    f.write_bytes(payload[: len(payload) // 2])
    docs, log = _docs([f])
    assert 0 < len(docs) < 5000
    assert [d.text for d in docs] == [f"Document {i}." for i in range(len(docs))]
    assert log.counts["unreadable_file"] == 1 and log.examples["unreadable_file"][0].startswith(f"{f}:")
