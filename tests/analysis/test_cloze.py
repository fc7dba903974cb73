"""Cloze probes: the beam over masks by hand, a two-piece answer scored as the sum of its pieces'
log-probabilities at two masks, precision@k, and templates without [X] or [Y] refused by file and line."""

from __future__ import annotations

import json
import math

import pytest
import torch

from bertology import BertConfig, BertForMaskedLM, Tokenizer
from bertology.analysis.cloze import (
    Fact,
    beam,
    fill_mask,
    mask_log_probs,
    precision_at,
    read_facts,
    score_fact,
)
from bertology.assets import minilm_dir
from bertology.errors import DataError


def test_beam_over_two_masks_by_hand():
    log_probs = torch.log(torch.tensor([[0.5, 0.3, 0.2], [0.1, 0.6, 0.3]]))
    found = beam(log_probs, 3)
    # all 9 sequences by product: (0,1) .30, (1,1) .18, (0,2) .15, (2,1) .12, (1,2) .09, ...
    assert [seq for seq, _ in found] == [(0, 1), (1, 1), (0, 2)]
    assert found[0][1] == pytest.approx(math.log(0.30))


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    tok = Tokenizer.from_pretrained(minilm_dir())
    model = BertForMaskedLM(BertConfig(vocab_size=tok.vocab_size, hidden_size=32, num_hidden_layers=2,
                                       num_attention_heads=4, intermediate_size=64)).eval()
    return model, tok


def test_a_two_piece_answer_is_scored_at_two_masks(tiny):
    model, tok = tiny
    fact = Fact("[X] likes [Y] .", "she", "snowboard")
    pieces = tok.backend.encode("snowboard", add_special_tokens=False).ids
    assert len(pieces) == 2  # snow ##board
    result = score_fact(model, tok, fact, k=50)
    _, log_probs = mask_log_probs(model, tok, f"she likes {tok.mask_token} {tok.mask_token} .")
    assert log_probs.shape[0] == 2 and result.pieces == 2
    assert result.log_prob == pytest.approx(float(log_probs[0, pieces[0]] + log_probs[1, pieces[1]]), rel=1e-5)
    ranked = beam(log_probs, 50)
    expected = next((n + 1 for n, (seq, _) in enumerate(ranked) if list(seq) == pieces), None)
    assert result.rank == expected
    # biased towards both pieces at every mask, the model ranks "snow snow" (+100) over the answer (+90)
    with torch.no_grad():
        model.mlm_head.decoder.bias[pieces[0]] += 50.0
        model.mlm_head.decoder.bias[pieces[1]] += 40.0
    try:
        biased = score_fact(model, tok, fact, k=5)
        assert biased.top[0][0] == "snow snow" and biased.rank in (2, 3)  # ties with "##board snow"
    finally:
        with torch.no_grad():
            model.mlm_head.decoder.bias[pieces[0]] -= 50.0
            model.mlm_head.decoder.bias[pieces[1]] -= 40.0


def test_fill_mask_and_precision(tiny):
    model, tok = tiny
    (fillers,) = fill_mask(model, tok, f"the {tok.mask_token} sat on the mat .", top_k=3)
    assert len(fillers) == 3 and fillers[0][1] >= fillers[1][1] >= fillers[2][1]
    assert sum(p for _, p in fillers) <= 1.0
    facts = [Fact("[X] [Y]", "a", "b")] * 4
    from bertology.analysis.cloze import FactResult

    results = [FactResult(facts[0], 1, rank, 0.0) for rank in (1, 3, None, 10)]
    assert precision_at(results, 1) == 0.25 and precision_at(results, 10) == 0.75


def test_templates_without_a_slot_name_the_file_and_line(tmp_path):
    path = tmp_path / "facts.jsonl"
    rows = [{"template": "[X] was born in [Y] .", "subject": "dante", "answer": "florence"},
            {"template": "[X] was born somewhere .", "subject": "x", "answer": "y"}]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    with pytest.raises(DataError, match=r"facts.jsonl:2: the template .* must hold \[Y\] exactly once"):
        read_facts(path)
    path.write_text(json.dumps({"template": "[Y] [X]", "subject": "a"}) + "\n", encoding="utf-8")
    with pytest.raises(DataError, match="facts.jsonl:1: expected"):
        read_facts(path)


def test_cloze_command_scores_facts_and_fills_masks(tiny, tmp_path, capsys):
    from bertology.cli.main import main

    model, tok = tiny
    model.save_pretrained(tmp_path / "mlm")
    tok.save_pretrained(tmp_path / "mlm")
    facts = tmp_path / "facts.jsonl"
    facts.write_text("".join(json.dumps({"template": "[X] likes [Y] .", "subject": s, "answer": a}) + "\n"
                             for s, a in (("she", "snowboard"), ("he", "tea"))), encoding="utf-8")
    assert main(["cloze", str(tmp_path / "mlm"), "--facts", str(facts), "--out", str(tmp_path / "out")]) == 0
    data = json.loads((tmp_path / "out" / "results.json").read_text())
    assert [r["pieces"] for r in data["results"]] == [2, 1] and 0.0 <= data["P@10"] <= 1.0
    assert main(["cloze", str(tmp_path / "mlm"), "--text", "the [MASK] sat ."]) == 0
    assert "mask 1:" in capsys.readouterr().out


def test_a_pretraining_checkpoint_fills_masks_like_its_masked_lm(tiny):
    """A pretraining run saves BertForPreTraining (MLM + NSP heads): cloze reads its MLM logits."""
    from bertology import BertForPreTraining

    model, tok = tiny
    pretraining = BertForPreTraining(model.config).eval()
    missing, _ = pretraining.load_state_dict(model.state_dict(), strict=False)
    assert all(k.startswith(("bert.pooler", "sentence_head")) for k in missing), missing
    text = f"the {tok.mask_token} sat on the mat ."
    assert fill_mask(pretraining, tok, text, top_k=3) == fill_mask(model, tok, text, top_k=3)
