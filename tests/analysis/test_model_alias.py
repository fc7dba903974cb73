"""Every command that takes a model folder also takes the installed MiniLM by its alias, "minilm"."""

from __future__ import annotations

from bertology.runs.probe import load_encoder, load_folder_tokenizer
from bertology.serving.handlers import build_service


def test_analysis_and_serve_take_the_minilm_alias():
    assert load_encoder("minilm").config.num_hidden_layers == 6
    assert load_folder_tokenizer("minilm").vocab_size == 30522
    assert "embed" in build_service("minilm").handlers
