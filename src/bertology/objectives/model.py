"""An encoder plus any combination of objectives, trained as one module by the Trainer."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from torch import nn

from ..data.transforms import InstanceTransform, TransformContext
from ..errors import ConfigError
from ..models.bert import BertModel
from ..models.config import BertConfig
from ..models.family import family_for_config, family_for_encoder
from ..models.pretrained import init_bert_weights
from ..training.protocol import StepOutput
from ..utils.typed import Where
from .base import RunFacts, objective_classes, objective_options


def _encoder_class(config: BertConfig) -> type[BertModel]:
    """The bare encoder of the config's family (BERT's for a config class no family registered)."""
    family = family_for_config(config)
    return family.encoder_class if family is not None else BertModel  # type: ignore[return-value]

logger = logging.getLogger("bertology")


class PretrainingModel(nn.Module):
    """`forward(**batch)` runs each objective's input preparation, the encoder once, then every head.

    `options` maps an objective's name to its options: parsed already (a PretrainConfig's are) or a mapping,
    parsed here into the dataclass the objective was registered with.
    """

    def __init__(self, config: BertConfig, objectives: list[str], options: dict[str, Any] | None = None,
                 encoder: BertModel | None = None) -> None:
        super().__init__()
        classes = objective_classes(list(objectives))
        parsed = objective_options(list(classes), options, Where("", ["objective_options"]))
        pair_tasks = [c.pair_task for c in classes.values() if c.pair_task]
        self.config = config
        self.pair_task = pair_tasks[0] if pair_tasks else None
        self.needs_case = any(c.needs_case for c in classes.values())
        self.needs_masking = any(c.needs_masking for c in classes.values())
        needs_pooler = any(c.needs_pooler for c in classes.values())
        self.bert = encoder if encoder is not None else _encoder_class(config)(config, add_pooling_layer=needs_pooler)
        if needs_pooler and self.bert.pooler is None:
            raise ConfigError("a sentence-pair objective needs the encoder's [CLS] pooler")
        self.options = parsed
        self.objectives = nn.ModuleDict(
            {name: cls(config, self.bert, parsed[name]) for name, cls in classes.items()}
        )
        shared = {id(p) for p in self.bert.parameters()}  # tied decoders and shared embeddings stay as they are
        for objective in self.objectives.values():
            init_bert_weights(objective, config.initializer_range, keep=shared)
        # The packed (unpadded) path skips all work on padding.
        self.bert.unpad_inputs = True

    def instance_transforms(self, context: TransformContext) -> list[InstanceTransform]:
        """The objectives' changes to each instance, in the objectives' order, for the collator."""
        built = (type(obj).instance_transform(self.options[name], context) for name, obj in self.objectives.items())
        return [t for t in built if t is not None]

    def check_run(self, run: RunFacts) -> None:
        """Each objective's check that the run can feed it (before training starts)."""
        for name, objective in self.objectives.items():
            type(objective).check_run(name, self.options[name], run)

    def forward(self, **batch: Any) -> StepOutput:
        for objective in self.objectives.values():
            batch = objective.prepare(self, batch)
        extras = {name: batch[name] for name in self.bert.token_inputs}
        encoded = self.bert(batch["input_ids"], batch["attention_mask"], batch.get("token_type_ids"),
                            batch.get("position_ids"), **extras)
        losses, metrics = {}, {}
        for objective in self.objectives.values():
            loss, metric = objective(encoded, batch)
            losses.update(loss)
            metrics.update(metric)
        return StepOutput(losses, metrics)

    def adopt_heads(self, pretrained: nn.Module) -> list[str]:
        """Continue from a pretrained head model: take its MLM and NSP/SOP heads where they fit."""
        taken = []
        lm = next((n for n in ("mlm", "tlm") if n in self.objectives), None)  # TLM is MLM over translation pairs
        if lm is not None and hasattr(pretrained, "mlm_head"):
            self.objectives[lm].head.load_state_dict(pretrained.mlm_head.state_dict())
            taken.append(lm)
        for name in ("nsp", "sop"):
            if name in self.objectives and hasattr(pretrained, "sentence_head"):
                self.objectives[name].head.load_state_dict(pretrained.sentence_head.state_dict())
                taken.append(name)
        return taken

    def save_pretrained(self, folder: str | os.PathLike) -> Path:
        """Export in the Hugging Face layout: BertForPreTraining (MLM + NSP/SOP), BertForMaskedLM (MLM) or
        BertModel (anything else, e.g. ELECTRA's discriminator encoder). Other task heads stay in the run's
        checkpoints."""
        heads = self.objectives
        family = family_for_encoder(type(self.bert))
        pretraining_class = family.pretraining_class if family is not None else None
        masked_lm_class = family.masked_lm_class if family is not None else None
        sentence = next((heads[n] for n in ("nsp", "sop") if n in heads), None)
        lm = next((heads[n] for n in ("mlm", "tlm") if n in heads), None)  # TLM's head is a masked-LM head
        if lm is not None and sentence is not None and pretraining_class is not None:
            target: nn.Module = pretraining_class(self.config)
            target.sentence_head.load_state_dict(sentence.head.state_dict())
        elif lm is not None and masked_lm_class is not None:
            target = masked_lm_class(self.config)
        else:
            target = type(self.bert)(self.config, add_pooling_layer=self.bert.pooler is not None)
        encoder = target.bert if hasattr(target, "bert") else target
        missing, unexpected = encoder.load_state_dict(self.bert.state_dict(), strict=False)
        # a pooler continued from a pretrained folder has no place in a masked-LM export (transformers' has none)
        unexpected = [u for u in unexpected if not (u.startswith("pooler.") and getattr(encoder, "pooler", 1) is None)]
        if unexpected or [m for m in missing if not m.startswith("pooler")]:
            raise RuntimeError(f"encoder export mismatch: missing {missing}, unexpected {unexpected}")
        if lm is not None and hasattr(target, "mlm_head"):
            target.mlm_head.load_state_dict(lm.head.state_dict())
        elif lm is not None:  # a family without a masked-LM class: its encoder alone (the head is in checkpoints)
            logger.warning("family of %s registers no masked-LM class: exporting the encoder without its MLM head "
                           "(it stays in the run's checkpoints)", type(self.bert).__name__)
        return target.save_pretrained(folder)
