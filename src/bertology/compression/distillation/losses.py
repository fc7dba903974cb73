"""Distillation losses by name: TinyBERT's embedding, hidden, attention and prediction losses and DistilBERT's
soft-target and cosine losses.

Each loss is an `nn.Module` (it may own learned projections, which then train with the student) built as
`cls(options, student_config, teacher_config, layer_map)` and called as `loss(student, teacher, batch)`:
`student` and `teacher` are `Views` of the two models' outputs and `batch` holds the `attention_mask` (and,
for MLM logits, an optional `positions` mask). Every loss returns an unweighted float32 scalar; `combined`
applies each loss's `weight` and sums. Padding never counts: every mean runs over real tokens (or real
(query, key) pairs) only, so the loss of a sequence does not depend on how much padding its batch has.

A new loss is one module::

    @DISTILLATION_LOSSES.register("pkd", options=PkdOptions)
    class Pkd(DistillationLoss):
        stage = "intermediate"
        def forward(self, student, teacher, batch): ...
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import torch
import torch.nn.functional as F
from torch import nn

from ...errors import ConfigError
from ...models.config import BertConfig
from ...utils.registry import Registry
from ...utils.typed import Where, as_where, check_choice
from . import mapping
from .mapping import LayerMap

__all__ = [
    "DISTILLATION_LOSSES", "STAGES", "AttentionLoss", "AttentionLossOptions", "CosineLoss", "CosineLossOptions",
    "DistilBertSoftLoss", "DistilBertSoftOptions", "DistillationLoss", "EmbeddingLoss", "EmbeddingLossOptions",
    "HiddenLoss", "HiddenLossOptions", "LossOptions", "PredictionLoss", "PredictionLossOptions", "Views",
    "build_losses", "combined", "for_stage",
]

#: TinyBERT trains in two stages: "intermediate" (embedding, attention, hidden) then "prediction";
#: a loss of stage "any" belongs to both.
STAGES = ("intermediate", "prediction", "any")

DISTILLATION_LOSSES: Registry[type[DistillationLoss]] = Registry("distillation loss")


# ------------------------------------------------------------------------------------------------ inputs
@dataclass
class Views:
    """What a loss may read of one model's forward pass; any may be None when no loss needs it.

    `hidden_states` is the embedding output followed by one tensor per layer, (batch, seq, hidden);
    `attention_scores` one pre-softmax, unmasked (batch, heads, seq, seq) tensor per layer; `logits` is
    (batch, classes), (batch, seq, classes) or (n, classes) for logits already taken at selected positions.
    """

    hidden_states: tuple[torch.Tensor, ...] | None = None
    attention_scores: tuple[torch.Tensor, ...] | None = None
    logits: torch.Tensor | None = None

    @classmethod
    def of(cls, output: Any, logits: torch.Tensor | None = None) -> Views:
        """The views of a model output (EncoderOutput, MaskedLMOutput, ...); `logits` overrides its own."""
        if logits is None:
            logits = getattr(output, "logits", None)
            if logits is None:
                logits = getattr(output, "prediction_logits", None)
        return cls(getattr(output, "hidden_states", None), getattr(output, "attention_scores", None), logits)


def _real_tokens(batch: Mapping[str, Any], shape: tuple[int, int], device: torch.device) -> torch.Tensor:
    """(batch, seq) bool: True at real tokens (all of them when the batch has no attention_mask)."""
    mask = batch.get("attention_mask") if batch is not None else None
    if mask is None:
        return torch.ones(shape, dtype=torch.bool, device=device)
    if tuple(mask.shape) != tuple(shape):
        raise ValueError(f"attention_mask has shape {tuple(mask.shape)} but the outputs are for (batch, seq) = "
                         f"{tuple(shape)}")
    return mask.to(device).bool()


def _need(view: Views, field: str, who: str, loss: str, flag: str) -> Any:
    value = getattr(view, field)
    if value is None:
        raise ValueError(f"the {loss!r} distillation loss needs the {who}'s {field}; run the {who} with {flag}")
    return value


def _masked_mse(diff: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of diff**2 over the entries where `mask` (broadcast to diff) is True. The mask is applied before
    squaring, so whatever sits at masked entries (even inf) changes neither the value nor the gradient."""
    mask = mask.expand_as(diff)
    diff = torch.where(mask, diff, torch.zeros((), dtype=diff.dtype, device=diff.device))
    return diff.pow(2).sum() / mask.sum().clamp(min=1)


def _layer_count(states: tuple[torch.Tensor, ...], expected: int, who: str, what: str, loss: str) -> None:
    if len(states) != expected:
        raise ValueError(f"the {loss!r} distillation loss expected {expected} {what} from the {who} "
                         f"(its config), got {len(states)}")


# ------------------------------------------------------------------------------------------------ options
def _check_weight(where: str, weight: float) -> None:
    if weight < 0:
        raise ConfigError(f"{where}field 'weight' must be >= 0, got {weight}")


@dataclass
class LossOptions:
    #: this loss's share of the total (`combined` multiplies the loss by it)
    weight: float = 1.0

    def validate(self, where: str = "") -> None:
        _check_weight(where, self.weight)


@dataclass
class EmbeddingLossOptions(LossOptions):
    pass


@dataclass
class HiddenLossOptions(LossOptions):
    #: one learned projection W_h for every layer (TinyBERT) or one per mapped student layer
    shared: bool = True
    #: lambda_m for student layers 1..M (default all 1); the loss is sum_m lambda_m L_m
    layer_weights: list[float] | None = None

    def validate(self, where: str = "") -> None:
        super().validate(where)
        _check_layer_weights(where, self.layer_weights)


@dataclass
class AttentionLossOptions(LossOptions):
    #: "match": the student needs the teacher's head count; "mean": compare the mean over heads
    heads: Literal["match", "mean"] = "match"
    layer_weights: list[float] | None = None

    def validate(self, where: str = "") -> None:
        super().validate(where)
        check_choice(where, "heads", self.heads, ("match", "mean"))
        _check_layer_weights(where, self.layer_weights)


@dataclass
class PredictionLossOptions(LossOptions):
    temperature: float = 1.0
    #: multiply by T^2 so that the gradient's size does not shrink as T grows (Hinton et al.)
    scale_by_t_squared: bool = False

    def validate(self, where: str = "") -> None:
        super().validate(where)
        _check_temperature(where, self.temperature)


@dataclass
class DistilBertSoftOptions(LossOptions):
    temperature: float = 2.0

    def validate(self, where: str = "") -> None:
        super().validate(where)
        _check_temperature(where, self.temperature)


@dataclass
class CosineLossOptions(LossOptions):
    pass


def _check_layer_weights(where: str, weights: list[float] | None) -> None:
    if weights is None:
        return
    for i, w in enumerate(weights):
        if isinstance(w, bool) or not isinstance(w, (int, float)) or w < 0:
            raise ConfigError(f"{where}field 'layer_weights' entry {i + 1} must be a number >= 0, got {w!r}")


def _check_temperature(where: str, t: float) -> None:
    if not t > 0:
        raise ConfigError(f"{where}field 'temperature' must be > 0, got {t}")


# ------------------------------------------------------------------------------------------------ base
class DistillationLoss(nn.Module):
    """One configured distillation loss. Subclasses set `stage` and implement `forward`."""

    #: TinyBERT's stage this loss belongs to: "intermediate", "prediction" or "any"
    stage: ClassVar[str] = "any"

    def __init__(self, options: Any, student_config: BertConfig, teacher_config: BertConfig,
                 layer_map: LayerMap | None = None, where: str | Where = "") -> None:
        super().__init__()
        self.options = options
        self.student_config = student_config
        self.teacher_config = teacher_config
        self.where = as_where(where)
        self.layer_map = layer_map

    @functools.cached_property
    def name(self) -> str:
        """The name it is registered under (looked up once: the training step reads it)."""
        return next((n for n, c in DISTILLATION_LOSSES.items() if c is type(self)), type(self).__name__)

    def forward(self, student: Views, teacher: Views, batch: Mapping[str, Any]) -> torch.Tensor:
        raise NotImplementedError

    # Helpers for the layer-wise losses.
    def _layers(self) -> LayerMap:
        """The layer map, checked against both configs (TinyBERT's uniform map when none is given)."""
        m, n = self.student_config.num_hidden_layers, self.teacher_config.num_hidden_layers
        lm = self.layer_map if self.layer_map is not None else mapping.layer_map("uniform", m, n, self.where)
        if (lm.student_layers, lm.teacher_layers) != (m, n):
            raise ConfigError(f"{self.where}the layer map is for a {lm.student_layers}-layer student and a "
                              f"{lm.teacher_layers}-layer teacher, but the configs have {m} and {n} layers")
        return lm

    def _layer_weights(self, lm: LayerMap) -> list[float]:
        weights = getattr(self.options, "layer_weights", None)
        if weights is None:
            return [1.0] * lm.student_layers
        if len(weights) != lm.student_layers:
            raise ConfigError(f"{self.where}field 'layer_weights' has {len(weights)} entries but the student "
                              f"has {lm.student_layers} mapped layers (one weight per student layer)")
        return [float(w) for w in weights]

    def _same_vocab(self) -> None:
        vs, vt = self.student_config.vocab_size, self.teacher_config.vocab_size
        if vs != vt:
            raise ConfigError(f"{self.where}the {self.name!r} distillation loss compares output distributions, but "
                              f"the student's vocabulary has {vs} tokens and the teacher's {vt}")


def _projection(d_in: int, d_out: int) -> nn.Linear:
    """A learned map from the student's width to the teacher's (no bias, as W_e and W_h in TinyBERT).

    It starts as the identity when the widths are equal and as a norm-preserving (orthonormal-column)
    matrix otherwise, so the first losses compare the representations themselves instead of a random
    rescaling of them.
    """
    linear = nn.Linear(d_in, d_out, bias=False)
    with torch.no_grad():
        if d_in == d_out:
            linear.weight.copy_(torch.eye(d_out))
        else:
            nn.init.orthogonal_(linear.weight)
    return linear


def _check_logits(student: torch.Tensor, teacher: torch.Tensor, loss: str) -> None:
    if student.shape[-1] != teacher.shape[-1]:
        raise ValueError(f"the {loss!r} distillation loss needs as many output classes from the student as from "
                         f"the teacher: the student's logits have {student.shape[-1]}, the teacher's "
                         f"{teacher.shape[-1]}")
    if student.shape != teacher.shape:
        raise ValueError(f"the {loss!r} distillation loss got student logits of shape {tuple(student.shape)} "
                         f"and teacher logits of shape {tuple(teacher.shape)}")


def _rows(logits: torch.Tensor, batch: Mapping[str, Any], use_positions: bool) -> torch.Tensor:
    """(n, classes): the logit rows that count. Token-level (batch, seq, classes) logits are taken at
    `positions` (when given and `use_positions`) or else at the real tokens; 2-d logits are rows already."""
    if logits.dim() == 2:
        return logits
    if logits.dim() != 3:
        raise ValueError(f"logits must have 2 or 3 dimensions, got shape {tuple(logits.shape)}")
    select = batch.get("positions") if (batch is not None and use_positions) else None
    if select is None:
        select = _real_tokens(batch, tuple(logits.shape[:2]), logits.device)
    else:
        if tuple(select.shape) != tuple(logits.shape[:2]):
            raise ValueError(f"positions has shape {tuple(select.shape)}, expected {tuple(logits.shape[:2])}")
        select = select.to(logits.device).bool()
    return logits[select]


# ------------------------------------------------------------------------------------------------ TinyBERT
@DISTILLATION_LOSSES.register("embedding", options=EmbeddingLossOptions)
class EmbeddingLoss(DistillationLoss):
    """TinyBERT's L_embd = MSE(E^S W_e, E^T), the mean over real tokens and the teacher's hidden units."""

    stage = "intermediate"

    def __init__(self, options: Any, student_config: BertConfig, teacher_config: BertConfig,
                 layer_map: LayerMap | None = None, where: str | Where = "") -> None:
        super().__init__(options, student_config, teacher_config, layer_map, where)
        self.projection = _projection(student_config.hidden_size, teacher_config.hidden_size)

    def forward(self, student: Views, teacher: Views, batch: Mapping[str, Any]) -> torch.Tensor:
        flag = "output_hidden_states=True"
        hs = _need(student, "hidden_states", "student", "embedding", flag)[0]
        ht = _need(teacher, "hidden_states", "teacher", "embedding", flag)[0]
        real = _real_tokens(batch, tuple(hs.shape[:2]), hs.device)
        diff = self.projection(hs.float()) - ht.float()
        return _masked_mse(diff, real.unsqueeze(-1))


@DISTILLATION_LOSSES.register("hidden", options=HiddenLossOptions)
class HiddenLoss(DistillationLoss):
    """TinyBERT's L_hidn = sum_m lambda_m MSE(H^S_m W_h, H^T_g(m)) over student layers m = 1..M, each MSE the
    mean over real tokens and the teacher's hidden units. W_h is one matrix for all layers (`shared`, as in
    the paper) or one per student layer."""

    stage = "intermediate"

    def __init__(self, options: Any, student_config: BertConfig, teacher_config: BertConfig,
                 layer_map: LayerMap | None = None, where: str | Where = "") -> None:
        super().__init__(options, student_config, teacher_config, layer_map, where)
        self.map = self._layers()
        self.weights = self._layer_weights(self.map)
        count = 1 if options.shared else self.map.student_layers
        self.projections = nn.ModuleList(
            _projection(student_config.hidden_size, teacher_config.hidden_size) for _ in range(count))

    def projection(self, m: int) -> nn.Linear:
        """W_h of student layer m (1..M)."""
        return self.projections[0 if self.options.shared else m - 1]

    def forward(self, student: Views, teacher: Views, batch: Mapping[str, Any]) -> torch.Tensor:
        flag = "output_hidden_states=True"
        hs = _need(student, "hidden_states", "student", "hidden", flag)
        ht = _need(teacher, "hidden_states", "teacher", "hidden", flag)
        _layer_count(hs, self.map.student_layers + 1, "student", "hidden states", "hidden")
        _layer_count(ht, self.map.teacher_layers + 1, "teacher", "hidden states", "hidden")
        real = _real_tokens(batch, tuple(hs[0].shape[:2]), hs[0].device).unsqueeze(-1)
        total = torch.zeros((), dtype=torch.float32, device=hs[0].device)
        for (m, n), w in zip(self.map.intermediate, self.weights, strict=True):
            diff = self.projection(m)(hs[m].float()) - ht[n].float()
            total = total + w * _masked_mse(diff, real)
        return total


@DISTILLATION_LOSSES.register("attention", options=AttentionLossOptions)
class AttentionLoss(DistillationLoss):
    """TinyBERT's L_attn on unnormalised (pre-softmax) scores: for each student layer m,
    L_m = (1/h) sum_i MSE(A^S_{m,i}, A^T_{g(m),i}), each MSE the mean over the (query, key) pairs of the batch
    whose query and key are both real tokens; the loss is sum_m lambda_m L_m. TinyBERT's code zeroes the
    masked (very negative) scores instead, which counts padded pairs as perfect matches and so makes the loss
    depend on the amount of padding; leaving them out does not.

    `heads="mean"` compares the mean score over heads (h = 1 above), so that students with fewer heads than
    the teacher can still learn its attention; `heads="match"` requires equal head counts.
    """

    stage = "intermediate"

    def __init__(self, options: Any, student_config: BertConfig, teacher_config: BertConfig,
                 layer_map: LayerMap | None = None, where: str | Where = "") -> None:
        super().__init__(options, student_config, teacher_config, layer_map, where)
        self.map = self._layers()
        self.weights = self._layer_weights(self.map)
        hs, ht = student_config.num_attention_heads, teacher_config.num_attention_heads
        if options.heads == "match" and hs != ht:
            raise ConfigError(f"{self.where}the attention loss with heads: match compares head by head, but the "
                              f"student has {hs} attention heads and the teacher {ht}; use heads: mean to "
                              f"compare the mean over heads")

    def forward(self, student: Views, teacher: Views, batch: Mapping[str, Any]) -> torch.Tensor:
        flag = "output_attention_scores=True"
        ss = _need(student, "attention_scores", "student", "attention", flag)
        st = _need(teacher, "attention_scores", "teacher", "attention", flag)
        _layer_count(ss, self.map.student_layers, "student", "layers of attention scores", "attention")
        _layer_count(st, self.map.teacher_layers, "teacher", "layers of attention scores", "attention")
        batch_size, _, seq, _ = ss[0].shape
        real = _real_tokens(batch, (batch_size, seq), ss[0].device)
        pairs = (real[:, :, None] & real[:, None, :]).unsqueeze(1)  # (batch, 1, query, key)
        total = torch.zeros((), dtype=torch.float32, device=ss[0].device)
        for (m, n), w in zip(self.map.intermediate, self.weights, strict=True):
            a_s, a_t = ss[m - 1].float(), st[n - 1].float()
            if self.options.heads == "mean":
                a_s, a_t = a_s.mean(dim=1, keepdim=True), a_t.mean(dim=1, keepdim=True)
            elif a_s.shape[1] != a_t.shape[1]:
                raise ValueError(f"the attention loss with heads: match got {a_s.shape[1]} student heads and "
                                 f"{a_t.shape[1]} teacher heads")
            # Every head has the same real pairs, so the mean over heads and pairs is (1/h) sum_i MSE_i.
            total = total + w * _masked_mse(a_s - a_t, pairs)
        return total


class _SoftTargets(DistillationLoss):
    """What the two soft-target losses share: both models' logits (same vocabulary or label set), taken at the
    rows that count and divided by the temperature."""

    stage = "prediction"
    reads = "its prediction head (Views.logits)"

    def scaled_rows(self, student: Views, teacher: Views, batch: Mapping[str, Any]
                    ) -> tuple[torch.Tensor, torch.Tensor, float]:
        """(z_S / T, z_T / T, T) at the rows that count (examples, real tokens or the batch's `positions`)."""
        zs = _need(student, "logits", "student", self.name, self.reads)
        zt = _need(teacher, "logits", "teacher", self.name, self.reads)
        _check_logits(zs, zt, self.name)
        t = float(self.options.temperature)
        return _rows(zs.float(), batch, True) / t, _rows(zt.float(), batch, True) / t, t


@DISTILLATION_LOSSES.register("prediction", options=PredictionLossOptions)
class PredictionLoss(_SoftTargets):
    """TinyBERT's L_pred = -softmax(z^T / T) . log_softmax(z^S / T), the mean over examples, or for token-level
    (batch, seq, classes) logits over the real tokens (or the `positions` the batch names); times T^2 when
    `scale_by_t_squared`."""

    def forward(self, student: Views, teacher: Views, batch: Mapping[str, Any]) -> torch.Tensor:
        zs, zt, t = self.scaled_rows(student, teacher, batch)
        if zs.shape[0] == 0:
            return zs.sum() * 0.0
        loss = -(F.softmax(zt, dim=-1) * F.log_softmax(zs, dim=-1)).sum(-1).mean()
        return loss * t * t if self.options.scale_by_t_squared else loss


# ------------------------------------------------------------------------------------------------ DistilBERT
@DISTILLATION_LOSSES.register("distilbert_soft", options=DistilBertSoftOptions)
class DistilBertSoftLoss(_SoftTargets):
    """DistilBERT's soft-target loss: T^2 KL(softmax(z^T/T) || softmax(z^S/T)) over the vocabulary, the mean
    over the MLM positions (the batch's `positions`, else its real tokens), as DistilBERT's KLDivLoss with
    reduction="batchmean". It differs from the soft cross-entropy by the teacher's entropy, a constant, so
    the gradient is the same and a perfect student scores 0."""

    reads = "its MLM head (Views.logits)"

    def __init__(self, options: Any, student_config: BertConfig, teacher_config: BertConfig,
                 layer_map: LayerMap | None = None, where: str | Where = "") -> None:
        super().__init__(options, student_config, teacher_config, layer_map, where)
        self._same_vocab()  # (a task's prediction loss compares label sets, checked on the logits' shapes)

    def forward(self, student: Views, teacher: Views, batch: Mapping[str, Any]) -> torch.Tensor:
        zs, zt, t = self.scaled_rows(student, teacher, batch)
        if zs.shape[0] == 0:
            return zs.sum() * 0.0
        kl = F.kl_div(F.log_softmax(zs, dim=-1), F.log_softmax(zt, dim=-1), reduction="sum", log_target=True)
        return kl / zs.shape[0] * t * t


@DISTILLATION_LOSSES.register("cosine", options=CosineLossOptions)
class CosineLoss(DistillationLoss):
    """DistilBERT's cosine embedding loss on the last hidden states: 1 - cos(h^S, h^T), the mean over real
    tokens. It has no projection, so the two widths must match."""

    stage = "any"

    def __init__(self, options: Any, student_config: BertConfig, teacher_config: BertConfig,
                 layer_map: LayerMap | None = None, where: str | Where = "") -> None:
        super().__init__(options, student_config, teacher_config, layer_map, where)
        ds, dt = student_config.hidden_size, teacher_config.hidden_size
        if ds != dt:
            raise ConfigError(f"{self.where}the cosine loss compares last hidden states directly, but the student's "
                              f"hidden_size is {ds} and the teacher's {dt}; use the hidden loss, which learns "
                              f"a projection")

    def forward(self, student: Views, teacher: Views, batch: Mapping[str, Any]) -> torch.Tensor:
        flag = "output_hidden_states=True"
        hs = _need(student, "hidden_states", "student", "cosine", flag)[-1].float()
        ht = _need(teacher, "hidden_states", "teacher", "cosine", flag)[-1].float()
        if hs.shape != ht.shape:
            raise ValueError(f"the cosine loss got last hidden states of shape {tuple(hs.shape)} (student) and "
                             f"{tuple(ht.shape)} (teacher)")
        real = _real_tokens(batch, tuple(hs.shape[:2]), hs.device)
        cos = F.cosine_similarity(hs[real], ht[real], dim=-1)
        if cos.numel() == 0:
            return cos.sum() * 0.0
        return (1.0 - cos).mean()


# ------------------------------------------------------------------------------------------------ together
def build_losses(spec: Mapping[str, Any], student_config: BertConfig, teacher_config: BertConfig,
                 layer_map: LayerMap | None = None, where: str | Where = "") -> nn.ModuleDict:
    """The losses a config names, `{name: options}` (an options dataclass, a mapping to parse, or None for the
    defaults), each built for these two configs and this layer map (TinyBERT's uniform map when None).
    Unknown names and option typos are ConfigErrors that name the key and suggest."""
    where = as_where(where)
    losses = nn.ModuleDict()
    for name, data in spec.items():
        here = where.child(name)
        entry = DISTILLATION_LOSSES.entry(name, where)
        options = DISTILLATION_LOSSES.options(name, data, here)
        losses[name] = entry.obj(options, student_config, teacher_config, layer_map, here)
    return losses


def for_stage(losses: Mapping[str, DistillationLoss], stage: str) -> dict[str, DistillationLoss]:
    """The losses that train in TinyBERT's `stage` ("intermediate" or "prediction"; "any"-stage ones in both)."""
    check_choice("", "stage", stage, ("intermediate", "prediction"))
    return {name: loss for name, loss in losses.items() if loss.stage in (stage, "any")}


def combined(losses: Mapping[str, DistillationLoss], student: Views, teacher: Views, batch: Mapping[str, Any],
             stage: str | None = None) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The total sum_k weight_k * loss_k (over the losses of `stage` when given) and, for logging, each
    loss's unweighted value, detached."""
    chosen = dict(losses.items()) if stage is None else for_stage(losses, stage)
    if not chosen:
        raise ConfigError(f"no distillation loss to compute{f' in stage {stage!r}' if stage else ''} "
                          f"(have: {', '.join(losses) or 'none'})")
    total: torch.Tensor | None = None
    parts: dict[str, torch.Tensor] = {}
    for name, loss in chosen.items():
        value = loss(student, teacher, batch)
        parts[name] = value.detach()
        term = float(loss.options.weight) * value
        total = term if total is None else total + term
    assert total is not None
    return total, parts
