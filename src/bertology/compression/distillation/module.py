"""A student learning from a frozen teacher, as one module the Trainer trains like any other.

`forward(**batch)` runs both models on the batch and returns the named distillation losses of the current
phase (TinyBERT: "intermediate" = embeddings, attention and hidden states; "prediction" = the task logits;
DistilBERT: everything at once, plus the student's own masked-LM loss). The teacher is held outside the
module's parameters and state dict: it does not train, and checkpoints do not copy it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from ...training.protocol import StepOutput
from .losses import DistillationLoss, Views, for_stage

#: batch keys that are not model inputs
_NOT_INPUTS = ("task", "labels", "index", "sentence_label", "case_labels", "word_starts", "maskable")


class Distillation(nn.Module):
    """`student` and `teacher` are both encoders, both TaskModels (task distillation: the head logits are
    the prediction layer) or both masked-LM models (DistilBERT)."""

    def __init__(self, student: nn.Module, teacher: nn.Module, losses: nn.ModuleDict, phase: str = "all",
                 task: str | None = None, mlm_weight: float = 0.0, label_weight: float = 0.0,
                 input_map: torch.Tensor | None = None) -> None:
        """`mlm_weight`: DistilBERT's own masked-LM loss; `label_weight`: the task's loss on the true labels
        beside the soft targets (Hinton et al.'s mix), in the phases that train the prediction layer;
        `input_map`: the teacher's token ids -> a pruned student's (compression/vocabulary.py)."""
        super().__init__()
        self.student = student
        self.losses = losses
        self._teacher = [teacher]  # a list: not a submodule, so not trained, not checkpointed
        self.phase = phase
        self.task = task
        self.mlm_weight = mlm_weight
        self.label_weight = label_weight
        self.register_buffer("input_map", input_map, persistent=False)

    @property
    def teacher(self) -> nn.Module:
        return self._teacher[0]

    def active(self) -> dict[str, DistillationLoss]:
        """The losses of the current phase."""
        if self.phase == "all":
            return dict(self.losses.items())
        return for_stage(self.losses, self.phase)

    def _apply(self, fn, recurse: bool = True):  # .to(device) and friends move the teacher too
        super()._apply(fn, recurse)
        self.teacher._apply(fn, recurse)
        return self

    def train(self, mode: bool = True) -> Distillation:
        super().train(mode)
        self.teacher.eval()  # the teacher's dropout stays off
        return self

    # ---------------------------------------------------------------------------------- forward
    def forward(self, **batch: Any) -> StepOutput:
        active = self.active()
        scores = any(loss.name == "attention" for loss in active.values())
        logits = any(loss.stage == "prediction" or loss.name in ("distilbert_soft",) for loss in active.values())
        student_batch = batch
        if self.input_map is not None:
            student_batch = {**batch, "input_ids": self.input_map[batch["input_ids"]]}
        student, own_loss = self._views(self.student, student_batch, scores, logits)
        with torch.no_grad():
            teacher, _ = self._views(self.teacher, batch, scores, logits)
        losses = {name: float(loss.options.weight) * loss(student, teacher, batch) for name, loss in active.items()}
        if self.mlm_weight and own_loss is not None:
            losses["mlm"] = self.mlm_weight * own_loss
        metrics = {}
        if self.label_weight and logits and student.logits is not None and hasattr(self.student, "heads"):
            head = self.student.heads[batch.get("task") or self.task or self.student.default_task]
            targets = {k: batch[k] for k in head.kind.target_keys if k in batch}
            if targets:
                loss, metrics = head.kind.loss(head.config, student.logits, targets)
                losses["labels"] = self.label_weight * loss
        return StepOutput(losses, metrics)

    def _views(self, model: nn.Module, batch: Mapping[str, Any], scores: bool, logits: bool
               ) -> tuple[Views, torch.Tensor | None]:
        inputs = {k: v for k, v in batch.items() if k not in _NOT_INPUTS}
        heads = getattr(model, "heads", None)
        if heads is not None:  # a TaskModel: its encoder, then the task's head on the hidden states
            out = model.encoder(**inputs, output_hidden_states=True, output_attention_scores=scores)
            head_logits = None
            if logits:
                head = heads[batch.get("task") or self.task or model.default_task]
                head_logits = head(out.hidden_states, inputs["attention_mask"])
            return Views(out.hidden_states, out.attention_scores, head_logits), None
        labels = batch.get("labels")
        if hasattr(model, "mlm_head"):  # a masked-LM model: logits (and its own loss) at labelled positions
            out = model(**inputs, labels=labels, output_hidden_states=True, output_attention_scores=scores)
            return Views(out.hidden_states, out.attention_scores, out.logits), out.loss
        out = model(**inputs, output_hidden_states=True, output_attention_scores=scores)
        return Views(out.hidden_states, out.attention_scores, None), None

    # ---------------------------------------------------------------------------------- export
    def save_pretrained(self, folder) -> Any:
        """The student alone (the learned projections W_e, W_h only served the losses)."""
        return self.student.save_pretrained(folder)
