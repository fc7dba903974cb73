"""Task heads for fine-tuning, in transformers' layout: sequence classification (and regression), token
classification and extractive question answering."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .bert import BERT_ENCODER_NAMES, _BertWithHeads
from .checkpoint import NameMap, Rule
from .config import BertConfig
from .outputs import ModelOutput
from .pretrained import register


@dataclass
class ClassifierOutput(ModelOutput):
    logits: torch.Tensor
    loss: torch.Tensor | None = None
    hidden_states: tuple[torch.Tensor, ...] | None = None
    attentions: tuple[torch.Tensor, ...] | None = None


@dataclass
class QuestionAnsweringOutput(ModelOutput):
    start_logits: torch.Tensor
    end_logits: torch.Tensor
    loss: torch.Tensor | None = None
    hidden_states: tuple[torch.Tensor, ...] | None = None
    attentions: tuple[torch.Tensor, ...] | None = None


def _dropout(config: BertConfig) -> nn.Dropout:
    p = config.classifier_dropout if config.classifier_dropout is not None else config.hidden_dropout_prob
    return nn.Dropout(p)


class _TaskHead(_BertWithHeads):
    head_name = "classifier"
    pooled = True
    #: the head's loss reads logits at padded positions too (transformers' span loss does), so the default
    #: call keeps the padding for the same loss; a model built with unpad_inputs=True still packs
    reads_padding = False

    def __init__(self, config: BertConfig, outputs: int | None = None) -> None:
        super().__init__(config, add_pooling_layer=self.pooled)
        self.dropout = _dropout(config)
        setattr(self, self.head_name, nn.Linear(config.hidden_size, outputs or config.num_labels))
        self.init_weights()

    @classmethod
    def name_map(cls) -> NameMap:
        return BERT_ENCODER_NAMES.with_prefix("bert.", "bert.") + NameMap(
            [Rule(f"{cls.head_name}.{{w}}", f"{cls.head_name}.{{w}}")])

    def _encode_all(self, input_ids, attention_mask, token_type_ids, position_ids, output_hidden_states,
                    output_attentions, token_inputs):
        unpad = False if self.reads_padding and self.bert.unpad_inputs is None else None
        return self._encode(input_ids, attention_mask, token_type_ids, position_ids, output_hidden_states,
                            output_attentions, False, token_inputs, unpad)


@register("bert")
class BertForSequenceClassification(_TaskHead):
    """The pooled [CLS] vector through dropout and a linear layer; the loss follows `problem_type` (regression
    for one label, single- or multi-label classification otherwise), as transformers decides it."""

    def forward(self, input_ids, attention_mask=None, token_type_ids=None, position_ids=None,
                output_hidden_states=False, output_attentions=False, labels=None, **token_inputs):
        out = self._encode_all(input_ids, attention_mask, token_type_ids, position_ids, output_hidden_states,
                               output_attentions, token_inputs)
        logits = self.classifier(self.dropout(out.pooler_output))
        loss = None if labels is None else self.loss(logits, labels)
        return ClassifierOutput(logits, loss, out.hidden_states, out.attentions)

    def loss(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        kind = self.config.problem_type
        if kind is None:
            if self.config.num_labels == 1:
                kind = "regression"
            elif labels.dtype in (torch.long, torch.int):
                kind = "single_label_classification"
            else:
                kind = "multi_label_classification"
        logits = logits.float()
        if kind == "regression":
            return F.mse_loss(logits.squeeze(), labels.float().squeeze()) if self.config.num_labels == 1 \
                else F.mse_loss(logits, labels.float())
        if kind == "single_label_classification":
            return F.cross_entropy(logits.view(-1, self.config.num_labels), labels.view(-1))
        return F.binary_cross_entropy_with_logits(logits, labels.float())


@register("bert")
class BertForTokenClassification(_TaskHead):
    """A label per token (tagging); labels of -100 (word-piece continuations, padding) are ignored."""

    pooled = False

    def forward(self, input_ids, attention_mask=None, token_type_ids=None, position_ids=None,
                output_hidden_states=False, output_attentions=False, labels=None, **token_inputs):
        out = self._encode_all(input_ids, attention_mask, token_type_ids, position_ids, output_hidden_states,
                               output_attentions, token_inputs)
        logits = self.classifier(self.dropout(out.last_hidden_state))
        loss = None
        if labels is not None:
            loss = F.cross_entropy(logits.float().view(-1, self.config.num_labels), labels.view(-1))
        return ClassifierOutput(logits, loss, out.hidden_states, out.attentions)


@register("bert")
class BertForQuestionAnswering(_TaskHead):
    """Start and end logits of the answer span over the tokens (extractive QA, SQuAD style)."""

    head_name = "qa_outputs"
    pooled = False
    reads_padding = True  # softmax over every position, padding included, as transformers computes it

    def __init__(self, config: BertConfig) -> None:
        super().__init__(config, outputs=2)
        self.dropout = nn.Identity()  # transformers applies none here

    def forward(self, input_ids, attention_mask=None, token_type_ids=None, position_ids=None,
                output_hidden_states=False, output_attentions=False, start_positions=None, end_positions=None,
                **token_inputs):
        out = self._encode_all(input_ids, attention_mask, token_type_ids, position_ids, output_hidden_states,
                               output_attentions, token_inputs)
        start, end = self.qa_outputs(out.last_hidden_state).split(1, dim=-1)
        start, end = start.squeeze(-1).contiguous(), end.squeeze(-1).contiguous()
        loss = None
        if start_positions is not None and end_positions is not None:
            # positions outside the sequence (an answer cut off by truncation) are ignored
            ignored = start.shape[1]
            s = start_positions.view(-1).clamp(0, ignored)
            e = end_positions.view(-1).clamp(0, ignored)
            loss = (F.cross_entropy(start.float(), s, ignore_index=ignored)
                    + F.cross_entropy(end.float(), e, ignore_index=ignored)) / 2
        return QuestionAnsweringOutput(start, end, loss, out.hidden_states, out.attentions)


__all__ = ["BertForQuestionAnswering", "BertForSequenceClassification", "BertForTokenClassification"]
