"""CoNLL-U reading and writing, the errors of broken trees (each naming file and line), tree distances and depths."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from bertology.analysis.trees import (
    Sentence,
    check_heads,
    parse_conllu,
    read_conllu,
    tree_depths,
    tree_distances,
    write_conllu,
)
from bertology.errors import DataError


def row(i: int | str, word: str, upos: str, head: int | str, rel: str, xpos: str = "_") -> str:
    return "\t".join([str(i), word, "_", upos, xpos, "_", str(head), rel, "_", "_"])


#: "The cat sat on the mat ." - sat is the root; the cat, on the mat and the full stop hang from it
CAT = [
    row(1, "The", "DET", 2, "det", "DT"),
    row(2, "cat", "NOUN", 3, "nsubj", "NN"),
    row(3, "sat", "VERB", 0, "root", "VBD"),
    row(4, "on", "ADP", 6, "case", "IN"),
    row(5, "the", "DET", 6, "det", "DT"),
    row(6, "mat", "NOUN", 3, "obl", "NN"),
    row(7, ".", "PUNCT", 3, "punct", "."),
]
CAT_HEADS = [2, 3, 0, 6, 6, 3, 3]


def write(tmp_path: Path, lines: list[str], name: str = "in.conllu") -> Path:
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_read_small_file(tmp_path: Path) -> None:
    lines = [
        "# newdoc id = d1",  # line 1
        "# sent_id = 1",
        "# text = The cat sat on the mat.",
        *CAT,  # lines 4-10
        "",  # line 11
        "# sent_id = 2",  # line 12: the second sentence starts here
        row("1-2", "Don't", "_", "_", "_"),  # a multiword token: skipped
        row(1, "Do", "AUX", 3, "aux"),
        row(2, "n't", "PART", 3, "advmod"),
        row(3, "go", "VERB", 0, "root"),
        row("3.1", "go", "VERB", "_", "_"),  # an empty node: skipped
        row(4, "!", "PUNCT", 3, "punct"),
    ]  # no blank line at the end: the last sentence is still read
    path = tmp_path / "small.conllu"
    path.write_text("\n".join(lines), encoding="utf-8")
    first, second = read_conllu(path)
    assert first.words == ["The", "cat", "sat", "on", "the", "mat", "."]
    assert first.heads == CAT_HEADS
    assert first.upos == ["DET", "NOUN", "VERB", "ADP", "DET", "NOUN", "PUNCT"]
    assert first.xpos == ["DT", "NN", "VBD", "IN", "DT", "NN", "."]
    assert first.relations == ["det", "nsubj", "root", "case", "det", "obl", "punct"]
    assert (first.source, first.line) == (str(path), 1)
    assert first.root == 2 and len(first) == 7
    assert sorted(first.edges) == [(0, 1), (1, 2), (3, 5), (4, 5), (5, 2), (6, 2)]
    assert second.words == ["Do", "n't", "go", "!"]
    assert second.heads == [3, 3, 0, 3]
    assert second.line == 12
    assert second.where == f"{path}:12: "


def test_blank_lines_and_crlf(tmp_path: Path) -> None:
    path = tmp_path / "crlf.conllu"
    path.write_bytes(("\r\n".join(["", "", *CAT, "", "", "", *CAT, ""]) + "\r\n").encode())
    sentences = read_conllu(path)
    assert [s.line for s in sentences] == [3, 13]  # lines 1-2 and 10-12 are blank
    assert all(s.heads == CAT_HEADS for s in sentences)
    assert read_conllu(write(tmp_path, [], "empty.conllu")) == []


def test_cycle_names_file_and_line(tmp_path: Path) -> None:
    # 1 -> 2 -> 1, while 3 is the root: words 1 and 2 never reach it
    path = write(tmp_path, ["# a cycle", row(1, "a", "X", 2, "dep"), row(2, "b", "X", 1, "dep"),
                            row(3, "c", "X", 0, "root")])
    with pytest.raises(DataError, match=rf"^{path}:2: words 1 -> 2 -> 1 form a cycle with no path to the root"):
        read_conllu(path)


def test_self_loop_is_a_cycle(tmp_path: Path) -> None:
    path = write(tmp_path, [row(1, "a", "X", 0, "root"), row(2, "b", "X", 2, "dep")])
    with pytest.raises(DataError, match=rf"^{path}:2: word 2 is its own head"):
        read_conllu(path)


def test_head_out_of_range(tmp_path: Path) -> None:
    path = write(tmp_path, [*CAT, "", row(1, "a", "X", 0, "root"), row(2, "b", "X", 5, "dep")])
    with pytest.raises(DataError, match=rf"^{path}:10: head 5 of word 2 is out of range: the sentence has 2 words, "
                                        r"so heads must lie in 0\.\.2"):
        read_conllu(path)


def test_head_not_an_integer(tmp_path: Path) -> None:
    path = write(tmp_path, [row(1, "a", "X", 0, "root"), row(2, "b", "X", "one", "dep")])
    with pytest.raises(DataError, match=rf"^{path}:2: head 'one' of word 2 is not an integer"):
        read_conllu(path)


def test_two_roots_named(tmp_path: Path) -> None:
    path = write(tmp_path, ["# two roots", row(1, "a", "X", 0, "root"), row(2, "b", "X", 1, "dep"),
                            row(3, "c", "X", 0, "root")])
    with pytest.raises(DataError, match=rf"^{path}:4: 2 roots: words 1 \(line 2\), 3 \(line 4\) all have head 0"):
        read_conllu(path)


def test_no_root(tmp_path: Path) -> None:
    path = write(tmp_path, ["# no root", row(1, "a", "X", 2, "dep"), row(2, "b", "X", 1, "dep")])
    with pytest.raises(DataError, match=rf"^{path}:2: no root: no word has head 0"):
        read_conllu(path)


def test_bad_column_count(tmp_path: Path) -> None:
    path = write(tmp_path, [*CAT[:3], "4\ton\t_\tADP\tIN\t_\t6\tcase"])
    with pytest.raises(DataError, match=rf"^{path}:4: expected 10 tab-separated columns, got 8$"):
        read_conllu(path)
    spaces = write(tmp_path, ["1 a _ X _ _ 0 root _ _"], "spaces.conllu")
    with pytest.raises(DataError, match=rf"^{spaces}:1: expected 10 tab-separated columns, got 1 \(columns must "
                                        r"be separated by tabs"):
        read_conllu(spaces)


def test_ids_out_of_order(tmp_path: Path) -> None:
    path = write(tmp_path, [row(1, "a", "X", 0, "root"), row(3, "b", "X", 1, "dep")])
    with pytest.raises(DataError, match=rf"^{path}:2: word id '3' where 2 was expected"):
        read_conllu(path)
    # a missing blank line runs two sentences together: the second's id 1 comes where 8 was expected
    joined = write(tmp_path, [*CAT, *CAT], "joined.conllu")
    with pytest.raises(DataError, match=rf"^{joined}:8: word id '1' where 8 was expected"):
        read_conllu(joined)


def test_missing_and_undecodable_files(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no such CoNLL-U file"):
        read_conllu(tmp_path / "absent.conllu")
    bad = tmp_path / "latin1.conllu"
    bad.write_bytes(("\n".join(CAT) + "\n").encode() + row(1, "caf\xe9", "X", 0, "root").encode("latin-1"))
    with pytest.raises(DataError, match=rf"^{bad}:8: not UTF-8"):
        read_conllu(bad)


def test_write_round_trip(tmp_path: Path) -> None:
    sentences = parse_conllu(CAT + [""] + [row(1, "Hi", "INTJ", 0, "root")], "memory")
    built = Sentence(words=["silver", "trees"], heads=[2, 0])  # tags and relations default to "_"
    path = tmp_path / "out" / "silver.conllu"
    write_conllu([*sentences, built], path)
    back = read_conllu(path)
    assert [s.words for s in back] == [s.words for s in [*sentences, built]]
    assert [s.heads for s in back] == [[*CAT_HEADS], [0], [2, 0]]
    assert back[0].upos == sentences[0].upos and back[0].xpos == sentences[0].xpos
    assert back[0].relations == sentences[0].relations
    assert back[2].upos == ["_", "_"]
    assert path.read_text(encoding="utf-8").startswith("# text = The cat sat on the mat .\n1\tThe\t_\tDET\tDT\t")


def test_write_refuses_broken_trees(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="sentence 2: 2 roots"):
        write_conllu([Sentence(["a"], [0]), Sentence(["a", "b"], [0, 0])], tmp_path / "x.conllu")
    with pytest.raises(DataError, match="word 'a\\\\tb' holds a tab"):
        write_conllu([Sentence(["a\tb"], [0])], tmp_path / "x.conllu")
    assert not (tmp_path / "x.conllu").exists()
    with pytest.raises(DataError, match="3 heads for 2 words"):
        Sentence(["a", "b"], [0, 1, 1])


def test_tree_distances_by_hand() -> None:
    # edges (1-based): 1-2, 2-3, 3-6, 3-7, 4-6, 5-6; e.g. The -> on is The-cat-sat-mat-on, 4 edges
    expected = np.array([
        # The cat sat on the mat .
        [0, 1, 2, 4, 4, 3, 3],  # The
        [1, 0, 1, 3, 3, 2, 2],  # cat
        [2, 1, 0, 2, 2, 1, 1],  # sat
        [4, 3, 2, 0, 2, 1, 3],  # on
        [4, 3, 2, 2, 0, 1, 3],  # the
        [3, 2, 1, 1, 1, 0, 2],  # mat
        [3, 2, 1, 3, 3, 2, 0],  # .
    ])
    d = tree_distances(CAT_HEADS)
    assert d.dtype.kind == "i" and d.shape == (7, 7)
    np.testing.assert_array_equal(d, expected)
    np.testing.assert_array_equal(d, d.T)


def test_tree_depths_by_hand() -> None:
    # sat is the root (0); cat, mat and "." hang from it (1); The, on, the hang from those (2)
    np.testing.assert_array_equal(tree_depths(CAT_HEADS), [2, 1, 0, 2, 2, 1, 1])
    np.testing.assert_array_equal(tree_depths([0]), [0])
    np.testing.assert_array_equal(tree_distances([0]), [[0]])
    # a chain 1 <- 2 <- 3 <- 4 (4 is the root): depth and distance grow along it
    np.testing.assert_array_equal(tree_depths([2, 3, 4, 0]), [3, 2, 1, 0])
    np.testing.assert_array_equal(tree_distances([2, 3, 4, 0])[0], [0, 1, 2, 3])
    # depth of a word is its distance to the root word
    np.testing.assert_array_equal(tree_depths(CAT_HEADS), tree_distances(CAT_HEADS)[2])


def test_distances_refuse_broken_trees() -> None:
    with pytest.raises(DataError, match="cycle"):
        tree_distances([2, 1, 0])
    with pytest.raises(DataError, match="no root"):
        tree_depths([2, 1])
    with pytest.raises(DataError, match="trees.txt: head 4 of word 1 is out of range"):
        check_heads([4, 0], "trees.txt")
