"""Where a student starts: at random in a smaller configuration, from some of its teacher's layers
(DistilBERT: every other one), or from a general-distilled student (TinyBERT's second stage)."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from torch import nn

from ...errors import ConfigError
from ...models.config import BertConfig

#: ways to initialise a student
INITS = ("random", "teacher_layers", "pretrained")


def student_config(teacher: BertConfig, size: dict[str, Any], where: str = "") -> BertConfig:
    """The teacher's config with the student's sizes (layers, width, heads, feed-forward) replaced; the
    vocabulary, positions and activation stay the teacher's, so both read the same inputs."""
    fields = {f.name for f in dataclasses.fields(teacher)}
    unknown = sorted(set(size) - fields)
    if unknown:
        raise ConfigError(f"{where}student size names unknown config field(s) {unknown}")
    if "vocab_size" in size and size["vocab_size"] != teacher.vocab_size:
        raise ConfigError(f"{where}the student's vocab_size {size['vocab_size']} differs from the teacher's "
                          f"{teacher.vocab_size}: both must read the same token ids")
    return teacher.replace(**size) if size else teacher.replace()


def every_other_layer(teacher_layers: int) -> list[int]:
    """DistilBERT's choice: teacher layers 0, 2, 4, ... (0-based), half the depth."""
    return list(range(0, teacher_layers, 2))


def from_teacher_layers(teacher: nn.Module, layers: Sequence[int] | None = None, where: str = "") -> nn.Module:
    """A copy of `teacher` (an encoder) that keeps its embeddings, pooler and the listed layers (0-based, in
    order; default every other one). Widths stay the teacher's."""
    depth = teacher.config.num_hidden_layers
    chosen = list(every_other_layer(depth) if layers is None else layers)
    bad = [i for i in chosen if not 0 <= i < depth]
    if bad or not chosen:
        raise ConfigError(f"{where}student layers {chosen} must name teacher layers 0..{depth - 1}"
                          f"{f' ({bad} do not exist)' if bad else ''}")
    if len(set(getattr(teacher.encoder, "order", range(depth)))) != depth:
        raise ConfigError(f"{where}the teacher shares layers across depth (ALBERT): copy its layers into a "
                          "student with init: random instead")
    student = type(teacher)(teacher.config.select_layers(chosen))  # a pruned teacher's layer sizes follow
    state = {k: v for k, v in teacher.state_dict().items() if not k.startswith("encoder.layers.")}
    for new, old in enumerate(chosen):
        prefix = f"encoder.layers.{old}."
        state.update({f"encoder.layers.{new}.{k[len(prefix):]}": v for k, v in teacher.state_dict().items()
                      if k.startswith(prefix)})
    missing, unexpected = student.load_state_dict(state, strict=False)
    if unexpected or [k for k in missing if "glyph" not in k and not k.startswith("pooler.")]:
        raise ConfigError(f"{where}could not copy the teacher's layers (missing {missing}, unexpected {unexpected})")
    return student


def random_student(teacher: nn.Module, size: dict[str, Any], tokenizer: Any = None, where: str = "") -> nn.Module:
    """A freshly initialised encoder of the teacher's family with the student's sizes."""
    config = student_config(teacher.config, size, where)
    cls = type(teacher)
    if tokenizer is not None and hasattr(cls, "for_tokenizer"):
        return cls.for_tokenizer(config, tokenizer)
    return cls(config)


def pretrained_student(folder: str | Path, teacher: nn.Module, where: str = "") -> nn.Module:
    """A student saved by an earlier distillation (general distillation's model/, or a task distillation's,
    whose encoder it takes). A vocabulary other than the
    teacher's must be a pruned one with its own tokenizer: the run checks that and maps the ids."""
    from ...models import load

    folder = Path(folder)
    if (folder / "task.json").is_file() and (folder / "encoder").is_dir():  # a task-distilled student's encoder
        folder = folder / "encoder"
    student = load(folder)
    return getattr(student, "bert", student)


def freeze(model: nn.Module) -> nn.Module:
    """A teacher: evaluation mode and no gradients, for good."""
    model.eval()
    model.requires_grad_(False)
    return model
