"""BERT: the embedding, encoder and head blocks put together, and their Hugging Face tensor names."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .attention import Padding, tracing
from .checkpoint import NameMap, Rule
from .config import BertConfig
from .embeddings import TokenPositionSegmentEmbedding
from .encoder import Encoder, EncoderLayer
from .family import Family, register_family
from .heads import MaskedLMHead, Pooler, SentencePairHead
from .outputs import EncoderOutput, MaskedLMOutput, PreTrainingOutput
from .pretrained import PreTrainedModel, register

#: transformers' names for the input embeddings, shared by BERT, ALBERT and RoBERTa
EMBEDDING_RULES = [
    Rule("embeddings.word_embeddings.weight", "embeddings.word.weight"),
    Rule("embeddings.position_embeddings.weight", "embeddings.position.weight"),
    Rule("embeddings.token_type_embeddings.weight", "embeddings.segment.weight"),
    Rule("embeddings.LayerNorm.{w}", "embeddings.norm.{w}"),
]
#: TensorFlow-era checkpoints name LayerNorm parameters gamma and beta.
LEGACY_NAMES = {"LayerNorm.gamma": "LayerNorm.weight", "LayerNorm.beta": "LayerNorm.bias"}

BERT_ENCODER_NAMES = NameMap(
    [
        *EMBEDDING_RULES,
        Rule("encoder.layer.{i}.attention.self.{part}.{w}", "encoder.layers.{i}.attention.qkv.{w}",
             parts=("query", "key", "value")),
        Rule("encoder.layer.{i}.attention.output.dense.{w}", "encoder.layers.{i}.attention.out.{w}"),
        Rule("encoder.layer.{i}.attention.output.LayerNorm.{w}", "encoder.layers.{i}.attention_norm.{w}"),
        Rule("encoder.layer.{i}.intermediate.dense.{w}", "encoder.layers.{i}.ffn.up.{w}"),
        Rule("encoder.layer.{i}.output.dense.{w}", "encoder.layers.{i}.ffn.down.{w}"),
        Rule("encoder.layer.{i}.output.LayerNorm.{w}", "encoder.layers.{i}.ffn_norm.{w}"),
        Rule("pooler.dense.{w}", "pooler.dense.{w}"),
    ],
    legacy=LEGACY_NAMES,
)
BERT_MLM_NAMES = NameMap(
    [
        Rule("cls.predictions.transform.dense.{w}", "mlm_head.transform.{w}"),
        Rule("cls.predictions.transform.LayerNorm.{w}", "mlm_head.norm.{w}"),
        Rule("cls.predictions.bias", "mlm_head.decoder.bias"),
        Rule("cls.predictions.decoder.bias", "mlm_head.decoder.bias", load_only=True),
        Rule("cls.predictions.decoder.weight", "mlm_head.decoder.weight", load_only=True),
    ],
    legacy=LEGACY_NAMES,
)
BERT_NSP_NAMES = NameMap([Rule("cls.seq_relationship.{w}", "sentence_head.classifier.{w}")])


@register("bert")
class BertModel(PreTrainedModel):
    """Embeddings, post-LN encoder and (optionally) the [CLS] pooler.

    By default (`unpad_inputs=None`) a padded batch is packed: its real tokens travel together so the dense
    layers skip padding, whenever the padding share is worth it (see `attention.UNPAD_MIN_SHARE`) and no
    attention maps are asked for. Outputs at real positions equal the padded path's within float tolerance;
    at padded positions they are zeros instead of transformers' (meaningless) values. `unpad_inputs=False`
    (or `unpad=False` in a call) keeps the padded path and transformers' values everywhere; True always packs.
    """

    base_prefix = "bert."  # head-model checkpoints nest the encoder there; loading strips it
    #: extra per-token inputs the embedding takes (ChineseBERT: pinyin_ids), unpadded like input_ids
    token_inputs: tuple[str, ...] = ()

    def __init__(self, config: BertConfig, add_pooling_layer: bool = True, unpad_inputs: bool | None = None,
                 **embedding_options) -> None:
        super().__init__()
        self.config = config
        self.embeddings = self.build_embeddings(config, **embedding_options)
        self.encoder = self.build_encoder(config)
        self.pooler = Pooler(config.hidden_size) if add_pooling_layer else None
        self.unpad_inputs = unpad_inputs
        self.init_weights()

    # A family changes these two (and `embed`) and nothing else of the encoder.
    def build_embeddings(self, config: BertConfig, **options) -> nn.Module:
        return TokenPositionSegmentEmbedding(config)

    def build_encoder(self, config: BertConfig) -> Encoder:
        return Encoder([EncoderLayer(config, i) for i in range(config.num_hidden_layers)])

    @classmethod
    def name_map(cls) -> NameMap:
        return BERT_ENCODER_NAMES

    @classmethod
    def for_tokenizer(cls, config: BertConfig, tokenizer, **kwargs) -> BertModel:
        """A fresh model for this tokenizer's vocabulary (ChineseBERT renders its glyph table here)."""
        return cls(config, **kwargs)

    @property
    def max_sequence_length(self) -> int:
        return self.config.max_position_embeddings

    def position_ids_for(self, input_ids: torch.Tensor) -> torch.Tensor:
        """Positions 0..seq-1 (RoBERTa overrides: positions count real tokens after the padding index)."""
        batch, seq = input_ids.shape
        return torch.arange(seq, device=input_ids.device).expand(batch, seq)

    def embed(self, ids: torch.Tensor, positions: torch.Tensor, segments: torch.Tensor | None,
              **token_inputs: torch.Tensor) -> torch.Tensor:
        """Input vectors for the encoder (ALBERT adds its factorized projection here)."""
        return self.embeddings(ids, positions, segments, **token_inputs)

    def _check_inputs(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None,
                      token_type_ids: torch.Tensor | None) -> None:
        """Catch the usual mistakes here, with names, rather than as an index error deep in torch."""
        if input_ids.dim() != 2:
            raise ValueError(f"input_ids must have shape (batch, seq), got {tuple(input_ids.shape)}")
        seq = input_ids.shape[1]
        limit = self.max_sequence_length
        if seq > limit:
            raise ValueError(f"input_ids hold {seq} tokens per sequence but the model has {limit} positions; "
                             f"truncate to max_length={limit}")
        square = attention_mask is not None and attention_mask.dim() == 3
        if square and attention_mask.shape != (*input_ids.shape, seq):  # per-query mask: (batch, seq, seq)
            raise ValueError(f"attention_mask has shape {tuple(attention_mask.shape)}, expected "
                             f"{tuple(input_ids.shape)} or {(*input_ids.shape, seq)}")
        for name, tensor in (("attention_mask", None if square else attention_mask), ("token_type_ids", token_type_ids)):
            if tensor is not None and tensor.shape != input_ids.shape:
                raise ValueError(f"{name} has shape {tuple(tensor.shape)}, expected {tuple(input_ids.shape)}")
        # Value checks read the tensors back to the host: free on the CPU, a stall on a GPU, a graph break
        # under torch.compile and a constant in an export, so there they are left to the embedding lookup.
        if input_ids.device.type != "cpu" or tracing():
            return
        if input_ids.numel() and (int(input_ids.min()) < 0 or int(input_ids.max()) >= self.config.vocab_size):
            raise ValueError(f"input_ids hold ids outside [0, vocab_size={self.config.vocab_size}): "
                             f"min {int(input_ids.min())}, max {int(input_ids.max())}")
        segments = getattr(self.embeddings, "segment", None)  # ChineseBERT has none and ignores segments
        if token_type_ids is not None and token_type_ids.numel() and segments is not None:
            if int(token_type_ids.max()) >= segments.num_embeddings or int(token_type_ids.min()) < 0:
                raise ValueError(f"token_type_ids must lie in [0, type_vocab_size={segments.num_embeddings})")

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        output_hidden_states: bool = False,
        output_attentions: bool = False,
        output_attention_scores: bool = False,
        unpad: bool | None = None,
        **token_inputs: torch.Tensor,
    ) -> EncoderOutput:
        """`attention_mask` is (batch, seq), 1 at real tokens, or (batch, seq, seq), 1 where query i may attend
        key j (UniLM-style masks); the latter always runs padded (`unpad` is ignored)."""
        self._check_inputs(input_ids, attention_mask, token_type_ids)
        if set(token_inputs) != set(self.token_inputs):
            raise ValueError(f"{type(self).__name__} takes the extra inputs {list(self.token_inputs)}, "
                             f"got {sorted(token_inputs)}")
        batch, seq = input_ids.shape
        if unpad is None:
            unpad = self.unpad_inputs
        if unpad is None and (output_attentions or output_attention_scores):
            unpad = False  # attention maps come padded anyway: packing would only add copies
        padding = Padding.from_mask(attention_mask, batch, seq, unpad)
        if position_ids is None:
            position_ids = self.position_ids_for(input_ids)
        ids, positions, segments = (padding.unpad(t.unsqueeze(-1)).squeeze(-1) if t is not None else None
                                    for t in (input_ids, position_ids, token_type_ids))
        extras = {k: padding.unpad(v.reshape(batch, seq, -1)).reshape(*ids.shape, *v.shape[2:])
                  for k, v in token_inputs.items()}
        x = self.embed(ids, positions, segments, **extras)
        x, trace = self.encoder(x, padding, output_hidden_states, output_attentions, output_attention_scores)
        last = padding.pad(x)
        return EncoderOutput(
            last_hidden_state=last,
            pooler_output=self.pooler(last) if self.pooler is not None else None,
            hidden_states=trace.hidden_states,
            attentions=trace.attentions,
            attention_scores=trace.attention_scores,
        )


class _BertWithHeads(PreTrainedModel):
    """Heads over an encoder held as `self.bert` (whatever the family; the name map adds their prefix)."""

    base_prefix = "bert."
    encoder_class: type[BertModel] = BertModel

    def __init__(self, config: BertConfig, add_pooling_layer: bool) -> None:
        super().__init__()
        self.config = config
        self.bert = self.encoder_class(config, add_pooling_layer=add_pooling_layer)

    def _encode(self, input_ids, attention_mask, token_type_ids, position_ids, output_hidden_states,
                output_attentions, output_attention_scores, token_inputs, unpad: bool | None = None) -> EncoderOutput:
        return self.bert(input_ids, attention_mask, token_type_ids, position_ids, output_hidden_states,
                         output_attentions, output_attention_scores, unpad=unpad, **token_inputs)


@register("bert")
class BertForMaskedLM(_BertWithHeads):
    """BERT with the masked-LM head. Given labels, logits are computed only at labelled positions."""

    def __init__(self, config: BertConfig) -> None:
        super().__init__(config, add_pooling_layer=False)
        self.mlm_head = MaskedLMHead(config, self.bert.embeddings.word)
        self.init_weights()

    @classmethod
    def name_map(cls) -> NameMap:
        return BERT_ENCODER_NAMES.with_prefix("bert.", "bert.") + BERT_MLM_NAMES

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        output_hidden_states: bool = False,
        output_attentions: bool = False,
        output_attention_scores: bool = False,
        labels: torch.Tensor | None = None,
        **token_inputs: torch.Tensor,
    ) -> MaskedLMOutput:
        out = self._encode(input_ids, attention_mask, token_type_ids, position_ids, output_hidden_states,
                           output_attentions, output_attention_scores, token_inputs)
        logits, loss = self.mlm_head.logits_and_loss(out.last_hidden_state, labels)
        return MaskedLMOutput(logits=logits, loss=loss, hidden_states=out.hidden_states,
                              attentions=out.attentions, attention_scores=out.attention_scores)


@register("bert")
class BertForPreTraining(_BertWithHeads):
    """BERT with the masked-LM and next-sentence heads; the loss is their sum, as in the paper."""

    def __init__(self, config: BertConfig) -> None:
        super().__init__(config, add_pooling_layer=True)
        self.mlm_head = MaskedLMHead(config, self.bert.embeddings.word)
        self.sentence_head = SentencePairHead(config.hidden_size)
        self.init_weights()

    @classmethod
    def name_map(cls) -> NameMap:
        return BERT_ENCODER_NAMES.with_prefix("bert.", "bert.") + BERT_MLM_NAMES + BERT_NSP_NAMES

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        output_hidden_states: bool = False,
        output_attentions: bool = False,
        output_attention_scores: bool = False,
        labels: torch.Tensor | None = None,
        next_sentence_label: torch.Tensor | None = None,
        **token_inputs: torch.Tensor,
    ) -> PreTrainingOutput:
        out = self._encode(input_ids, attention_mask, token_type_ids, position_ids, output_hidden_states,
                           output_attentions, output_attention_scores, token_inputs)
        logits, mlm_loss = self.mlm_head.logits_and_loss(out.last_hidden_state, labels)
        nsp_logits = self.sentence_head(out.pooler_output)
        nsp_loss = None
        if next_sentence_label is not None:
            nsp_loss = F.cross_entropy(nsp_logits.float(), next_sentence_label.view(-1))
        losses = [t for t in (mlm_loss, nsp_loss) if t is not None]
        return PreTrainingOutput(
            prediction_logits=logits,
            seq_relationship_logits=nsp_logits,
            loss=sum(losses) if losses else None,
            mlm_loss=mlm_loss,
            nsp_loss=nsp_loss,
            hidden_states=out.hidden_states,
            attentions=out.attentions,
            attention_scores=out.attention_scores,
        )


register_family(Family("bert", BertConfig, BertModel, BertForPreTraining, BertForMaskedLM))
