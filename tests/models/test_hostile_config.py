"""A model folder's config.json is checked before any tensor is allocated: sizes that describe an absurd model
(a hostile or broken file) are refused by every loader with one clear line, quickly and without the memory."""

from __future__ import annotations

import json
import time

import pytest

from bertology import BertConfig, load
from bertology.cli.main import main
from bertology.errors import ConfigError


def _hostile(folder, **sizes):
    folder.mkdir()
    config = {"architectures": ["BertModel"], "model_type": "bert", "vocab_size": 30522, "hidden_size": 768,
              "num_hidden_layers": 12, "num_attention_heads": 12, "intermediate_size": 3072, **sizes}
    (folder / "config.json").write_text(json.dumps(config), encoding="utf-8")
    (folder / "model.safetensors").write_bytes(b"not read: the config is refused first")
    return folder


def test_estimate_counts_the_matrices():
    cfg = BertConfig(vocab_size=100, hidden_size=8, num_hidden_layers=2, num_attention_heads=2, intermediate_size=16,
                     max_position_embeddings=10, type_vocab_size=2)
    assert cfg.estimated_parameters() == (100 + 10 + 2) * 8 + 2 * (4 * 8 * 8 + 2 * 8 * 16)


@pytest.mark.parametrize("sizes", [{"vocab_size": 10**9}, {"hidden_size": 768 * 64, "intermediate_size": 10**6},
                                   {"num_hidden_layers": 10**6}])
def test_absurd_sizes_are_refused_before_allocation(tmp_path, sizes):
    folder = _hostile(tmp_path / "model", **sizes)
    start = time.perf_counter()
    with pytest.raises(ConfigError, match="billion parameters.*refused before allocating"):
        load(folder)
    assert time.perf_counter() - start < 5  # nothing of that size was built


def test_commands_refuse_it_in_one_line(tmp_path, capsys):
    folder = _hostile(tmp_path / "model", vocab_size=10**10)
    assert main(["info", str(folder)]) == 2
    err = capsys.readouterr().err
    assert "refused before allocating" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_the_limit_moves_with_the_environment(monkeypatch):
    monkeypatch.setenv("BERTOLOGY_MAX_PARAMETERS", "1000")
    with pytest.raises(ConfigError, match="over the limit of 0.0 billion"):
        BertConfig(vocab_size=100, hidden_size=8, num_hidden_layers=2, num_attention_heads=2, intermediate_size=16)
