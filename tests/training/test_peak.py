"""MFU: the model's training FLOPs counted by hand, and the machine's matmul peak measured once and cached."""

from __future__ import annotations

import json

import pytest
import torch

from bertology import BertForMaskedLM
from bertology.training import TrainConfig, Trainer
from bertology.training import peak as peak_module
from bertology.training.peak import encoder_training_flops, matmul_peak_flops

# L=2, H=8, I=16, S=4, vocab 10; 2 sequences of 4 tokens, 3 predicted positions
L, H, INTER, S, V, TOKENS, PREDICTED = 2, 8, 16, 4, 10, 8, 3
DENSE_FWD = 2 * (4 * 64 + 2 * 8 * 16) * L * TOKENS  # 2 x (4H² + 2HI) per layer per token = 1024 x 16
ATTN_FWD = 2 * 2 * 4 * 8 * L * TOKENS  # 2 x 2 x S x H per layer per token = 128 x 16
HEAD_FWD = 2 * (64 + 8 * 10) * PREDICTED  # transform H² + decoder H x vocab, at predicted positions only


def test_encoder_flops_by_hand_trainable():
    assert DENSE_FWD == 16384 and ATTN_FWD == 2048 and HEAD_FWD == 864
    flops = encoder_training_flops(H, INTER, L, V, TOKENS, S, PREDICTED, trainable=1.0)
    assert flops == 3 * (DENSE_FWD + ATTN_FWD + HEAD_FWD) == 57888


def test_encoder_flops_by_hand_frozen_and_partly_trained():
    # frozen weights: forward + activation gradients only (attention's backward is 2x: both operands)
    frozen = encoder_training_flops(H, INTER, L, V, TOKENS, S, PREDICTED, trainable=0.0)
    assert frozen == 2 * (DENSE_FWD + HEAD_FWD) + 3 * ATTN_FWD == 40640
    half = encoder_training_flops(H, INTER, L, V, TOKENS, S, PREDICTED, trainable=0.5)
    assert frozen < half < encoder_training_flops(H, INTER, L, V, TOKENS, S, PREDICTED)
    # no MLM head, logits nowhere: no decoder term; logits everywhere: the decoder at every token
    assert encoder_training_flops(H, INTER, L, V, TOKENS, S) == 3 * (DENSE_FWD + ATTN_FWD)
    everywhere = encoder_training_flops(H, INTER, L, V, TOKENS, S, predicted=TOKENS)
    assert everywhere == 3 * (DENSE_FWD + ATTN_FWD + 2 * (64 + 80) * TOKENS)


def test_attention_term_grows_with_sequence_length():
    short = encoder_training_flops(H, INTER, L, V, TOKENS, 4)
    long = encoder_training_flops(H, INTER, L, V, TOKENS, 8)
    assert long - short == 3 * ATTN_FWD


@pytest.fixture
def measured(monkeypatch, tmp_path):
    monkeypatch.setenv("BERTOLOGY_CACHE", str(tmp_path / "cache"))
    calls = []

    def fake(dtype, device, size=None):
        calls.append((dtype, device))
        return 1e9 * len(calls)

    monkeypatch.setattr(peak_module, "_measure", fake)
    return calls


def test_peak_is_measured_once_and_read_back(measured, tmp_path):
    assert matmul_peak_flops(torch.float32, "cpu") == 1e9
    assert matmul_peak_flops(torch.float32, "cpu") == 1e9  # read from the file
    assert len(measured) == 1
    data = json.loads((tmp_path / "cache" / "peak.json").read_text())
    (key,) = data
    assert "float32" in key and f"threads={torch.get_num_threads()}" in key
    assert not list((tmp_path / "cache").glob("*.tmp*"))  # written atomically, nothing left beside it


def test_peak_key_includes_dtype_and_threads(measured, tmp_path, monkeypatch):
    matmul_peak_flops(torch.float32, "cpu")
    matmul_peak_flops(torch.bfloat16, "cpu")
    assert len(measured) == 2
    threads = torch.get_num_threads()
    monkeypatch.setattr(torch, "get_num_threads", lambda: threads + 1)
    matmul_peak_flops(torch.float32, "cpu")
    assert len(measured) == 3
    assert len(json.loads((tmp_path / "cache" / "peak.json").read_text())) == 3


@pytest.mark.parametrize("content", ["{not json", "[1, 2]", '{"x": "y"}', ""])
def test_corrupt_cache_is_measured_again(measured, tmp_path, content):
    (tmp_path / "cache").mkdir()
    (tmp_path / "cache" / "peak.json").write_text(content)
    assert matmul_peak_flops(torch.float32, "cpu") == 1e9
    assert len(measured) == 1
    assert matmul_peak_flops(torch.float32, "cpu") == 1e9
    assert len(measured) == 1


def test_real_measurement_is_positive_and_leaves_global_random_state(monkeypatch):
    torch.manual_seed(3)
    before = torch.get_rng_state()
    flops = peak_module._measure(torch.float32, "cpu", size=256, repeats=3, batch_seconds=0.005)
    assert flops > 0
    assert torch.equal(before, torch.get_rng_state())


class _MLMData:
    def __init__(self, vocab, n=64, seq=8):
        g = torch.Generator().manual_seed(0)
        self.ids = torch.randint(5, vocab, (n, seq), generator=g)

    def __len__(self):
        return len(self.ids)

    def __getitem__(self, i):
        ids = self.ids[i]
        labels = torch.full_like(ids, -100)
        labels[::4] = ids[::4]
        return {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": labels}


@pytest.mark.parametrize("frozen", [False, True])
def test_logged_mfu_of_a_tiny_run_is_a_fraction(tmp_path, tiny_config, frozen):
    torch.manual_seed(0)
    model = BertForMaskedLM(tiny_config)
    if frozen:  # only the MLM head's transform trains: the encoder's weight gradients are not counted
        for name, p in model.named_parameters():
            p.requires_grad_(name.startswith("mlm_head"))
    config = TrainConfig(learning_rate=1e-3, max_steps=4, batch_size=8, log_every=2, save_every=0, progress=False,
                         plot=False, seed=1)
    trainer = Trainer(model, _MLMData(tiny_config.vocab_size), config, tmp_path)
    trainer.train()
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    train = [r for r in rows if r["split"] == "train"]
    assert train and all(0 < r["mfu"] <= 1 for r in train)
    hidden, intermediate, layers, vocab, mlm, _ = trainer._flops_sizes
    trainable = trainer._trainable
    assert (hidden, layers, vocab, mlm) == (32, 2, 50, True)
    assert (trainable < 0.2) if frozen else trainable == 1.0


def test_a_peak_cached_under_load_heals_when_a_run_beats_it(tmp_path, tiny_config, caplog, monkeypatch):
    """A peak measured while the machine was busy is too low: the run's achieved rate replaces it, so the
    logged MFU never exceeds 1 and the next run reads the better value."""
    # A private cache: the healed value (a tiny model's rate, far below the machine's peak) must not reach
    # the session's shared cache, where later tests would read it as the peak.
    monkeypatch.setenv("BERTOLOGY_CACHE", str(tmp_path / "private-cache"))
    key = peak_module._cache_key(torch.float32, "cpu")
    cache = peak_module.cache_dir() / "peak.json"
    cache.parent.mkdir(parents=True, exist_ok=True)
    cache.write_text(json.dumps({key: 1.0}))  # 1 FLOP/s: any run beats it
    torch.manual_seed(0)
    config = TrainConfig(learning_rate=1e-3, max_steps=4, batch_size=8, log_every=2, save_every=0, progress=False,
                         plot=False, seed=1)
    trainer = Trainer(BertForMaskedLM(tiny_config), _MLMData(tiny_config.vocab_size), config, tmp_path)
    with caplog.at_level("WARNING", logger="bertology"):
        trainer.train()
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert all(0 < r["mfu"] <= 1 for r in rows if r["split"] == "train")
    healed = json.loads(cache.read_text())[key]
    assert healed > 1.0 and healed == trainer._peak
    assert "above the cached" in caplog.text
