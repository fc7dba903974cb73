"""Shard checksums: `corpus prepare` records a SHA-256 of every shard file in meta.json, and a corpus whose
bytes changed afterwards (a flipped byte, a truncated file) is refused with the file's name before any
training step; a corpus prepared before checksums still opens, with one warning."""

from __future__ import annotations

import hashlib
import json
import logging
from itertools import islice
from pathlib import Path

import pytest

from bertology import Tokenizer
from bertology.assets import minilm_dir, peoples_daily_path, peoples_daily_sentences
from bertology.cli.main import main
from bertology.data import TokenCorpus, prepare_corpus
from bertology.data.shards import CorpusError

FAST = {"workers": 1, "progress": False, "chinese_words": None}


@pytest.fixture(scope="module")
def zh(tmp_path_factory) -> Path:
    """A small People's Daily corpus in three shards, and a character vocabulary for it."""
    root = tmp_path_factory.mktemp("zh")
    lines = ["".join(words) for words in islice(peoples_daily_sentences(), 200)]
    tok = Tokenizer.train(iter(lines), vocab_size=1500, limit_alphabet=2000, min_frequency=1)
    tok.save_pretrained(root / "tok")
    with open(peoples_daily_path(), encoding="utf-8") as handle:
        (root / "pd.txt").write_text("".join(islice(handle, 200)), encoding="utf-8")
    prepare_corpus([root / "pd.txt"], root / "corpus", tok, input_format="pku", shard_tokens=4000, **FAST)
    return root


def _copy(src: Path, dst: Path) -> Path:
    for path in src.rglob("*"):
        target = dst / path.relative_to(src)
        if path.is_dir():
            target.mkdir(parents=True, exist_ok=True)
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(path.read_bytes())
    return dst


def _flip(path: Path, at: int) -> None:
    data = bytearray(path.read_bytes())
    data[at] ^= 0x01
    path.write_bytes(bytes(data))


def test_meta_records_the_sha256_of_every_shard_file(zh):
    meta = json.loads((zh / "corpus" / "meta.json").read_text(encoding="utf-8"))
    assert len(meta["shards"]) >= 2
    for shard in meta["shards"]:
        files = sorted(p.name for p in (zh / "corpus" / shard["name"]).iterdir())
        assert sorted(shard["checksums"]) == files
        for name, value in shard["checksums"].items():
            digest = hashlib.sha256((zh / "corpus" / shard["name"] / name).read_bytes()).hexdigest()
            assert value == f"sha256:{digest}"
    corpus = TokenCorpus(zh / "corpus")
    assert corpus.has_checksums
    corpus.verify()  # an untouched corpus passes


@pytest.mark.parametrize("name", ["tokens.bin", "word_starts.bin", "sentences.bin", "documents.bin"])
def test_a_flipped_byte_is_refused_before_the_first_read(zh, tmp_path, name):
    folder = _copy(zh / "corpus", tmp_path / "c")
    bad = folder / "shard-00001" / name
    _flip(bad, bad.stat().st_size - 9)  # in the array body, not the offsets' last entry alone
    corpus = TokenCorpus(folder)  # opening stays cheap: only the sizes are checked here
    with pytest.raises(CorpusError, match=rf"{name}: checksum mismatch") as caught:
        corpus.sentence(0)
    assert "shard-00001" in str(caught.value)
    with pytest.raises(CorpusError, match="checksum mismatch"):
        TokenCorpus(folder).sentence_lengths()


def test_a_truncated_shard_is_refused_at_open(zh, tmp_path):
    folder = _copy(zh / "corpus", tmp_path / "c")
    bad = folder / "shard-00000" / "tokens.bin"
    bad.write_bytes(bad.read_bytes()[:-2])
    with pytest.raises(CorpusError, match=r"shard-00000/tokens.bin holds .* bytes.*truncated"):
        TokenCorpus(folder)


def test_a_corpus_without_checksums_opens_with_one_warning(zh, tmp_path, caplog):
    folder = _copy(zh / "corpus", tmp_path / "old")
    meta_path = folder / "meta.json"
    meta = json.loads(meta_path.read_text(encoding="utf-8"))
    for shard in meta["shards"]:
        del shard["checksums"]
    meta_path.write_text(json.dumps(meta), encoding="utf-8")
    with caplog.at_level(logging.WARNING, logger="bertology.data.shards"):
        first = TokenCorpus(folder)
        assert not first.has_checksums
        assert len(first.sentence(0)) > 0
        assert len(TokenCorpus(folder).sentence(1)) > 0  # a second open: no second warning
    warnings = [r for r in caplog.records if "no shard checksums" in r.getMessage()]
    assert len(warnings) == 1 and str(folder) in warnings[0].getMessage()


def test_a_malformed_checksum_entry_is_named(zh, tmp_path):
    folder = _copy(zh / "corpus", tmp_path / "c")
    meta = json.loads((folder / "meta.json").read_text(encoding="utf-8"))
    meta["shards"][0]["checksums"] = ["not", "a", "mapping"]
    (folder / "meta.json").write_text(json.dumps(meta), encoding="utf-8")
    with pytest.raises(CorpusError, match="meta.json: shard shard-00000: 'checksums' must map"):
        TokenCorpus(folder)


def test_pretrain_stops_before_its_first_step_on_a_corrupt_shard(zh, tmp_path, capsys):
    folder = _copy(zh / "corpus", tmp_path / "c")
    _flip(folder / "shard-00000" / "word_starts.bin", 3)  # nothing but the checksum can tell
    run = tmp_path / "run"
    overrides = [f"corpus={folder}", f"tokenizer={zh / 'tok'}", f"run_dir={run}", "model.preset=tiny",
                 "model.hidden_size=32", "model.num_attention_heads=2", "model.intermediate_size=64",
                 "data.max_length=32", "train.max_steps=2", "train.batch_size=4", "train.progress=false",
                 "train.bf16=false"]
    code = main(["pretrain", "bert", "--device", "cpu", *[x for o in overrides for x in ("--set", o)]])
    err = capsys.readouterr().err
    assert code == 2
    assert "shard-00000/word_starts.bin: checksum mismatch" in err and len(err.strip().splitlines()) == 1
    assert not list(run.glob("checkpoints/*")) and not (run / "model").exists()


def test_corpus_info_reports_a_corrupt_shard_in_one_line(zh, tmp_path, capsys):
    folder = _copy(zh / "corpus", tmp_path / "c")
    _flip(folder / "shard-00000" / "sentences.bin", 8)
    assert main(["corpus", "info", str(folder)]) == 2
    err = capsys.readouterr().err.strip()
    assert "sentences.bin" in err and len(err.splitlines()) == 1


def test_minilm_corpus_checksums_survive_a_reprepare(tmp_path):
    # the same inputs and options give the same shard bytes, so the same checksums
    (tmp_path / "in.txt").write_text("One sentence here. Another one.\n\nA second document.\n", encoding="utf-8")
    tok = Tokenizer.from_pretrained(minilm_dir())
    prepare_corpus([tmp_path / "in.txt"], tmp_path / "a", tok, **FAST)
    prepare_corpus([tmp_path / "in.txt"], tmp_path / "b", tok, **FAST)
    a = json.loads((tmp_path / "a" / "meta.json").read_text(encoding="utf-8"))["shards"]
    b = json.loads((tmp_path / "b" / "meta.json").read_text(encoding="utf-8"))["shards"]
    assert [s["checksums"] for s in a] == [s["checksums"] for s in b]
