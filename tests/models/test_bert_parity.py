"""Numerical parity with transformers' BERT, in both directions of the checkpoint format."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
import transformers

from bertology import BertConfig, BertForMaskedLM, BertForPreTraining, BertModel

from ._util import assert_close, perturb_, random_batch

transformers.logging.set_verbosity_error()

# Layers 1-4, hidden 32-96 (heads divide it), intermediate never a multiple of hidden, several vocab,
# segment-vocabulary and position sizes, every activation transformers and we both name, several eps.
CONFIGS = {
    "L1-H32-gelu": dict(num_hidden_layers=1, hidden_size=32, num_attention_heads=4, intermediate_size=50,
                        vocab_size=57, type_vocab_size=1, max_position_embeddings=32, hidden_act="gelu",
                        layer_norm_eps=1e-12),
    "L2-H48-relu": dict(num_hidden_layers=2, hidden_size=48, num_attention_heads=6, intermediate_size=70,
                        vocab_size=120, type_vocab_size=2, max_position_embeddings=48, hidden_act="relu",
                        layer_norm_eps=1e-6),
    "L3-H64-gelu_new": dict(num_hidden_layers=3, hidden_size=64, num_attention_heads=8, intermediate_size=100,
                            vocab_size=200, type_vocab_size=3, max_position_embeddings=64,
                            hidden_act="gelu_new", layer_norm_eps=1e-5),
    "L4-H96-silu": dict(num_hidden_layers=4, hidden_size=96, num_attention_heads=3, intermediate_size=150,
                        vocab_size=80, type_vocab_size=2, max_position_embeddings=80, hidden_act="silu",
                        layer_norm_eps=1e-7),
}
SEQ = 13
BATCH = 4


def _config(name: str, **changes) -> BertConfig:
    return BertConfig(**CONFIGS[name], initializer_range=0.1, **changes)


def _inputs(cfg: BertConfig, padded: bool, with_segments: bool, seed: int = 0, seq: int = SEQ) -> dict:
    batch = random_batch(cfg.vocab_size, cfg.type_vocab_size, BATCH, seq, seed, padded)
    if not padded:
        batch.pop("attention_mask")
    if not with_segments:
        batch.pop("token_type_ids")
    return batch


@dataclass
class Pair:
    cfg: BertConfig
    folder: Path
    ours: BertForPreTraining
    eager: transformers.BertForPreTraining
    sdpa: transformers.BertForPreTraining


@pytest.fixture(scope="module", params=list(CONFIGS))
def ours_saved(request, tmp_path_factory) -> Pair:
    """Our randomly initialised BertForPreTraining, saved and loaded back by transformers."""
    torch.manual_seed(1234)
    cfg = _config(request.param)
    model = perturb_(BertForPreTraining(cfg), seed=list(CONFIGS).index(request.param)).eval()
    folder = model.save_pretrained(tmp_path_factory.mktemp(request.param))
    eager = transformers.BertForPreTraining.from_pretrained(folder, attn_implementation="eager").eval()
    sdpa = transformers.BertForPreTraining.from_pretrained(folder, attn_implementation="sdpa").eval()
    return Pair(cfg, folder, model, eager, sdpa)


# ---------------------------------------------------------------------------- ours -> transformers
@pytest.mark.parametrize("with_segments", [True, False], ids=["segments", "no-segments"])
@pytest.mark.parametrize("padded", [True, False], ids=["padded", "full"])
@pytest.mark.parametrize("impl", ["eager", "sdpa"])
@torch.no_grad()
def test_our_checkpoint_matches_transformers(ours_saved: Pair, impl: str, padded: bool, with_segments: bool):
    cfg = ours_saved.cfg
    theirs_model = getattr(ours_saved, impl)
    batch = _inputs(cfg, padded, with_segments)

    ours = ours_saved.ours(**batch, output_hidden_states=True, output_attentions=True)
    theirs = theirs_model(**batch, output_hidden_states=True)
    eager = ours_saved.eager(**batch, output_attentions=True)

    assert len(ours.hidden_states) == cfg.num_hidden_layers + 1
    assert len(theirs.hidden_states) == cfg.num_hidden_layers + 1
    for i, (a, b) in enumerate(zip(ours.hidden_states, theirs.hidden_states, strict=True)):
        assert_close(a, b, f"hidden state {i}")
    assert len(ours.attentions) == cfg.num_hidden_layers
    for i, (a, b) in enumerate(zip(ours.attentions, eager.attentions, strict=True)):
        assert a.shape == (BATCH, cfg.num_attention_heads, SEQ, SEQ)
        assert_close(a, b, f"attention probabilities of layer {i}")
    assert ours.prediction_logits.shape == (BATCH, SEQ, cfg.vocab_size)
    assert_close(ours.prediction_logits, theirs.prediction_logits, "MLM logits")
    assert_close(ours.seq_relationship_logits, theirs.seq_relationship_logits, "NSP logits")
    assert ours.loss is None

    # The fast path (scaled_dot_product_attention, nothing extra asked for; a padded batch packed) gives the
    # same numbers at real tokens, and transformers' everywhere when asked to keep the padding.
    real = batch.get("attention_mask")
    fast = ours_saved.ours(**batch)
    assert fast.hidden_states is None and fast.attentions is None
    assert_close(fast.prediction_logits, theirs.prediction_logits, "MLM logits (fast path)", real)
    assert_close(fast.seq_relationship_logits, theirs.seq_relationship_logits, "NSP logits (fast path)")
    encoded = ours_saved.ours.bert(**batch)
    reference = theirs_model.bert(**batch)
    assert_close(encoded.last_hidden_state, reference.last_hidden_state, "last hidden state (fast path)", real)
    assert_close(encoded.pooler_output, reference.pooler_output, "pooler output")
    if real is not None:
        assert torch.count_nonzero(encoded.last_hidden_state[~real.bool()]) == 0, "zeros at padding"
    kept = ours_saved.ours.bert(**batch, unpad=False)
    assert_close(kept.last_hidden_state, reference.last_hidden_state, "last hidden state (padded path)")


@torch.no_grad()
def test_full_length_input(ours_saved: Pair):
    """A sequence as long as the position table, with padding in some rows."""
    cfg = ours_saved.cfg
    batch = _inputs(cfg, padded=True, with_segments=True, seed=5, seq=cfg.max_position_embeddings)
    ours = ours_saved.ours(**batch)
    theirs = ours_saved.sdpa(**batch)
    assert_close(ours.prediction_logits, theirs.prediction_logits, "MLM logits", batch["attention_mask"])
    assert_close(ours.seq_relationship_logits, theirs.seq_relationship_logits, "NSP logits")


# ---------------------------------------------------------------------------- transformers -> ours
@pytest.fixture(scope="module", params=list(CONFIGS))
def theirs_saved(request, tmp_path_factory):
    """transformers' randomly initialised BertForPreTraining saved as safetensors and as an old .bin."""
    hf_config = transformers.BertConfig(**CONFIGS[request.param], initializer_range=0.1)
    torch.manual_seed(4321)
    model = perturb_(transformers.BertForPreTraining(hf_config), seed=7).eval()
    folder = tmp_path_factory.mktemp(f"hf-{request.param}")
    model.save_pretrained(folder)
    assert (folder / "model.safetensors").is_file()
    bin_folder = tmp_path_factory.mktemp(f"hf-bin-{request.param}")
    # transformers 5 only writes safetensors; an old-style .bin holds the whole state dict, tied copies too.
    torch.save(model.state_dict(), bin_folder / "pytorch_model.bin")
    (bin_folder / "config.json").write_text((folder / "config.json").read_text())
    return model, folder, bin_folder


@torch.no_grad()
def _compare_pretraining(ours: BertForPreTraining, theirs, batch: dict) -> None:
    real = batch.get("attention_mask")
    a = ours(**batch, output_hidden_states=True)
    b = theirs(**batch, output_hidden_states=True)
    for i, (x, y) in enumerate(zip(a.hidden_states, b.hidden_states, strict=True)):
        assert_close(x, y, f"hidden state {i}", real)
    assert_close(a.prediction_logits, b.prediction_logits, "MLM logits", real)
    assert_close(a.seq_relationship_logits, b.seq_relationship_logits, "NSP logits")


@pytest.mark.parametrize("padded", [True, False], ids=["padded", "full"])
@torch.no_grad()
def test_transformers_checkpoint_loads_into_pretraining(theirs_saved, padded: bool):
    theirs, folder, _ = theirs_saved
    ours = BertForPreTraining.from_pretrained(folder, strict=True)  # every tensor is used, none missing
    assert not ours.training
    batch = _inputs(ours.config, padded, with_segments=True, seed=1)
    _compare_pretraining(ours, theirs, batch)


@torch.no_grad()
def test_transformers_checkpoint_loads_into_bert_model(theirs_saved):
    theirs, folder, _ = theirs_saved
    ours = BertModel.from_pretrained(folder)  # the heads are not part of a BertModel
    batch = _inputs(ours.config, padded=True, with_segments=True, seed=2)
    real = batch["attention_mask"]
    a = ours(**batch, output_hidden_states=True)
    b = theirs.bert(**batch, output_hidden_states=True)
    for i, (x, y) in enumerate(zip(a.hidden_states, b.hidden_states, strict=True)):
        assert_close(x, y, f"hidden state {i}", real)
    assert_close(a.last_hidden_state, b.last_hidden_state, "last hidden state", real)
    assert_close(a.pooler_output, b.pooler_output, "pooler output")


@torch.no_grad()
def test_transformers_checkpoint_loads_into_masked_lm(theirs_saved):
    theirs, folder, _ = theirs_saved
    ours = BertForMaskedLM.from_pretrained(folder)
    batch = _inputs(ours.config, padded=True, with_segments=True, seed=3)
    a = ours(**batch)
    b = theirs(**batch)
    assert_close(a.logits, b.prediction_logits, "MLM logits", batch["attention_mask"])
    assert ours.mlm_head.decoder.weight.data_ptr() == ours.bert.embeddings.word.weight.data_ptr()


@torch.no_grad()
def test_old_style_pytorch_model_bin_loads(theirs_saved):
    theirs, _, bin_folder = theirs_saved
    ours = BertForPreTraining.from_pretrained(bin_folder, strict=True)
    batch = _inputs(ours.config, padded=True, with_segments=False, seed=4)
    _compare_pretraining(ours, theirs, batch)


# ------------------------------------------------------------------------------------------ losses
def _labels(input_ids: torch.Tensor, attention_mask: torch.Tensor, seed: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    chosen = (torch.rand(input_ids.shape, generator=gen) < 0.3) & attention_mask.bool()
    chosen[0, 1] = True  # at least one label
    return torch.where(chosen, input_ids, torch.full_like(input_ids, -100))


@torch.no_grad()
def test_masked_lm_loss_and_logits_at_labelled_positions(ours_saved: Pair):
    ours = BertForMaskedLM.from_pretrained(ours_saved.folder)
    theirs = transformers.BertForMaskedLM.from_pretrained(ours_saved.folder).eval()
    batch = _inputs(ours.config, padded=True, with_segments=True, seed=6)
    labels = _labels(batch["input_ids"], batch["attention_mask"], seed=6)
    n = int((labels != -100).sum())

    a = ours(**batch, labels=labels)
    b = theirs(**batch, labels=labels)
    assert a.logits.shape == (n, ours.config.vocab_size)
    assert_close(a.logits, b.logits[labels != -100], "logits at labelled positions (row-major)")
    assert_close(a.loss, b.loss, "MLM loss")

    # By hand: the mean negative log-likelihood of each label under its row of logits.
    targets = labels[labels != -100]
    nll = -torch.log_softmax(a.logits.double(), dim=-1)[torch.arange(n), targets]
    assert_close(a.loss, nll.mean(), "MLM loss by hand")

    # Without labels: logits everywhere, and the same values at the labelled positions.
    full = ours(**batch).logits
    assert full.shape == labels.shape + (ours.config.vocab_size,)
    assert_close(full[labels != -100], a.logits, "logits with and without labels")


def test_masked_lm_without_any_label_gives_zero_loss_with_a_graph(ours_saved: Pair):
    model = BertForMaskedLM(ours_saved.cfg)
    batch = _inputs(ours_saved.cfg, padded=True, with_segments=True, seed=8)
    labels = torch.full_like(batch["input_ids"], -100)
    out = model(**batch, labels=labels)
    assert out.logits.shape == (0, ours_saved.cfg.vocab_size)
    assert out.loss.item() == 0.0
    assert out.loss.requires_grad
    out.loss.backward()  # must not fail
    grad = model.bert.embeddings.word.weight.grad
    assert grad is None or torch.count_nonzero(grad) == 0


@torch.no_grad()
def test_pretraining_loss_matches_transformers(ours_saved: Pair):
    batch = _inputs(ours_saved.cfg, padded=True, with_segments=True, seed=9)
    labels = _labels(batch["input_ids"], batch["attention_mask"], seed=9)
    nsp = torch.tensor([0, 1, 1, 0])
    a = ours_saved.ours(**batch, labels=labels, next_sentence_label=nsp)
    b = ours_saved.sdpa(**batch, labels=labels, next_sentence_label=nsp)
    assert_close(a.loss, b.loss, "total pre-training loss")
    assert_close(a.mlm_loss + a.nsp_loss, a.loss, "loss is MLM + NSP")
    assert_close(a.nsp_loss, F.cross_entropy(b.seq_relationship_logits, nsp), "NSP loss")
    assert a.prediction_logits.shape == (int((labels != -100).sum()), ours_saved.cfg.vocab_size)


# ------------------------------------------------------------------------------------------- unpad
@pytest.mark.parametrize("how", ["constructor", "forward"])
@torch.no_grad()
def test_unpadded_inputs_match_transformers_at_real_tokens(ours_saved: Pair, how: str):
    cfg = ours_saved.cfg
    if how == "constructor":
        model = BertModel(cfg, unpad_inputs=True).eval()
        model.load_state_dict(ours_saved.ours.bert.state_dict())
        run = model
    else:
        model = ours_saved.ours.bert

        def run(**kwargs):
            return model(**kwargs, unpad=True)

    batch = _inputs(cfg, padded=True, with_segments=True, seed=10)
    real = batch["attention_mask"].bool()
    assert not bool(real.all()) and bool(real[0].all())
    a = run(**batch, output_hidden_states=True, output_attentions=True)
    b = ours_saved.eager.bert(**batch, output_hidden_states=True, output_attentions=True)

    assert len(a.hidden_states) == cfg.num_hidden_layers + 1
    for i, (x, y) in enumerate(zip(a.hidden_states, b.hidden_states, strict=True)):
        assert_close(x[real], y[real], f"hidden state {i} at real tokens")
    assert_close(a.last_hidden_state[real], b.last_hidden_state[real], "last hidden state at real tokens")
    assert torch.count_nonzero(a.last_hidden_state[~real]) == 0, "padded positions must be zeros"
    assert_close(a.pooler_output, b.pooler_output, "pooler output")
    for i, (x, y) in enumerate(zip(a.attentions, b.attentions, strict=True)):
        rows = real[:, None, :, None].expand_as(x)
        assert_close(x[rows], y[rows], f"attentions of layer {i} from real tokens")

    fast = run(**batch)  # scaled_dot_product_attention on packed tokens
    assert_close(fast.last_hidden_state[real], b.last_hidden_state[real], "last hidden state (fast path)")
    assert torch.count_nonzero(fast.last_hidden_state[~real]) == 0
    assert_close(fast.pooler_output, b.pooler_output, "pooler output (fast path)")


# ------------------------------------------------------------------------------- attention scores
@torch.no_grad()
def test_attention_scores_are_pre_softmax(ours_saved: Pair):
    cfg = ours_saved.cfg
    batch = _inputs(cfg, padded=True, with_segments=True, seed=11)
    out = ours_saved.ours.bert(**batch, output_attentions=True, output_attention_scores=True,
                               output_hidden_states=True)
    assert len(out.attention_scores) == cfg.num_hidden_layers
    keys = batch["attention_mask"].bool()[:, None, None, :]
    for i, (scores, probs) in enumerate(zip(out.attention_scores, out.attentions, strict=True)):
        assert scores.shape == probs.shape == (BATCH, cfg.num_attention_heads, SEQ, SEQ)
        assert bool(torch.isfinite(scores).all()), "scores are taken before the padding mask"
        masked = scores.masked_fill(~keys, float("-inf"))
        assert_close(torch.softmax(masked, dim=-1), probs, f"softmax(scores + mask) of layer {i}")

    # Layer 0 by hand from transformers' query and key projections: q.k / sqrt(head_dim).
    attn = ours_saved.eager.bert.encoder.layer[0].attention.self
    x = out.hidden_states[0]
    heads, dim = cfg.num_attention_heads, cfg.head_dim

    def split(t):
        return t.view(BATCH, SEQ, heads, dim).transpose(1, 2)

    q, k = split(attn.query(x)), split(attn.key(x))
    assert_close(out.attention_scores[0], q @ k.transpose(-1, -2) / math.sqrt(dim), "layer 0 scores by hand")


# ------------------------------------------------------------------------------------------ grads
def test_gradients_match_transformers(tmp_path):
    torch.manual_seed(99)
    cfg = _config("L3-H64-gelu_new", hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    ours = perturb_(BertForPreTraining(cfg), seed=99)
    ours.save_pretrained(tmp_path)
    theirs = transformers.BertForPreTraining.from_pretrained(tmp_path)
    ours.train()
    theirs.train()
    batch = _inputs(cfg, padded=True, with_segments=True, seed=12)
    labels = _labels(batch["input_ids"], batch["attention_mask"], seed=12)
    nsp = torch.tensor([1, 0, 0, 1])

    loss_ours = ours(**batch, labels=labels, next_sentence_label=nsp).loss
    loss_theirs = theirs(**batch, labels=labels, next_sentence_label=nsp).loss
    assert_close(loss_ours, loss_theirs, "loss in train mode")
    loss_ours.backward()
    loss_theirs.backward()

    h = cfg.hidden_size
    assert_close(ours.bert.embeddings.word.weight.grad, theirs.bert.embeddings.word_embeddings.weight.grad,
                 "word embedding gradient")
    for i in range(cfg.num_hidden_layers):
        qkv = ours.bert.encoder.layers[i].attention.qkv.weight.grad
        mine = theirs.bert.encoder.layer[i].attention.self
        assert_close(qkv[:h], mine.query.weight.grad, f"layer {i} query weight gradient")
        assert_close(qkv[h:2 * h], mine.key.weight.grad, f"layer {i} key weight gradient")
        assert_close(qkv[2 * h:], mine.value.weight.grad, f"layer {i} value weight gradient")
