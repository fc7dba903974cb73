"""BART-style denoising (Lewis et al., 2020): the encoder reads a corrupted text, a shallow decoder rebuilds it.

Why an encoder-decoder and not an encoder-only head: token deletion and text infilling change the length of
the text (a span of k tokens becomes one [MASK], a deleted token leaves no trace), so there is no input
position at which an encoder could predict what is missing, nor a way to know how many tokens a [MASK] stands
for. A decoder that writes the whole original text left to right, reading the encoder's output through
cross-attention, needs no alignment between input and output; so every noising function (and any mix of
them) is trained by one loss.

The pieces:

- `DenoisingTransform`, run by the collator in the loader workers: noises the body of each instance (between
  [CLS] and the last [SEP]; see `data/noising.py`), keeps every per-token field aligned with the new sequence,
  and stores the reconstruction target (the original body and its [SEP]) and the decoder's teacher-forced
  input (the target shifted right, starting with [CLS]) as row fields.
- `DenoisingDecoder`: learned positions, `decoder_layers` post-LN `nn.TransformerDecoderLayer`s (BERT's
  width, heads, intermediate size, GeLU, dropout), causal self-attention, cross-attention to the encoder
  output; its input embeddings and output projection are the encoder's word embeddings (tied), so the
  families whose embedding width differs from the hidden size (ALBERT) are refused.
- The loss: mean token cross-entropy over the real target tokens (padding excluded).

The decoder exists only for training: `PretrainingModel.save_pretrained` exports the encoder alone (a
`BertModel`, or a masked-LM model with `mlm`), the decoder stays in the run's checkpoints.

Combining with `mlm` is allowed: the masker runs first, this transform then noises the masked sequence, and
the MLM labels travel with their tokens (a token deleted or covered by a span loses its label; a [MASK] made
by the noise has none), so MLM still predicts, at each surviving masked position, the token that was there.
The reconstruction target is always the text before masking.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..data.noising import NoisingOptions, Text, apply_noising
from ..data.transforms import Instance, InstanceTransform, TransformContext
from ..errors import ConfigError
from ..models.config import BertConfig
from ..models.heads import IGNORE_INDEX
from ..utils.typed import Where, as_where
from .base import Objective, RunFacts, accuracy, register

#: input formats that hold one text per instance (the pair formats hold two, and a pair task's label)
SINGLE_TEXT_FORMATS = ("doc_sentences", "full_sentences")


@dataclass
class DenoiseOptions(NoisingOptions):
    """`objective_options.denoise`: the noising (see `NoisingOptions`) and the decoder's depth."""

    #: layers of the training-only decoder
    decoder_layers: int = 1

    def validate(self, where: str | Where = "") -> None:
        super().validate(where)
        if self.decoder_layers < 1:
            raise ConfigError(f"{as_where(where)}field 'decoder_layers' must be >= 1, got {self.decoder_layers}")


def _embedding_problem(name: str, config: BertConfig, encoder: nn.Module) -> str | None:
    """Why the decoder cannot tie its embeddings to this encoder's word embeddings (None: it can)."""
    word = getattr(getattr(encoder, "embeddings", None), "word", None)
    if not isinstance(word, nn.Embedding):
        return (f"objective '{name}' ties its decoder to the encoder's word embeddings, and "
                f"{type(encoder).__name__} has no `embeddings.word` table")
    if word.embedding_dim != config.hidden_size:
        return (f"objective '{name}' ties its decoder's input and output embeddings to the encoder's word "
                f"embeddings, which must be as wide as the hidden size ({config.hidden_size}); "
                f"{type(encoder).__name__}'s are {word.embedding_dim} wide (factorized embeddings, as ALBERT's). "
                "Use a family whose embedding width is the hidden size (bert, roberta, chinesebert)")
    return None


class DenoisingTransform(InstanceTransform):
    """Noises each instance's body and stores the target to rebuild (see the module docstring)."""

    name = "denoise"
    row_fields = {"denoise_target": IGNORE_INDEX, "denoise_inputs": 0}

    def __init__(self, options: NoisingOptions, context: TransformContext) -> None:
        self.options = options
        self.cls, self.sep, self.pad, self.mask = (context.cls_token_id, context.sep_token_id,
                                                   context.pad_token_id, context.mask_token_id)

    def __call__(self, instance: Instance, rng: np.random.Generator) -> Instance:
        ids = np.asarray(instance["input_ids"], dtype=np.int64)
        original = np.asarray(instance["original_ids"], dtype=np.int64)
        seps = np.flatnonzero(original == self.sep)
        if len(original) < 2 or original[0] != self.cls or not len(seps):
            raise RuntimeError("transform 'denoise' expects instances of the form [CLS] text ... [SEP]")
        last = int(seps[-1])
        starts = np.asarray(instance.get("sentence_starts", np.zeros(len(ids), bool)), dtype=bool)
        body = slice(1, last)
        fixed = np.isin(original[body], [self.cls, self.sep, self.pad])
        noised = apply_noising(Text.of(ids[body], starts[body], fixed), rng, self.options, self.mask)
        keep = min(len(noised), last - 1)  # never longer than before (0-length spans insert tokens)
        inner = noised.take(np.arange(keep))
        # origin of each new position in the old instance (-1: a [MASK] the noise made)
        origin = np.concatenate([[0], np.where(inner.origin >= 0, inner.origin + 1, -1), [last]])
        new_ids = np.concatenate([[self.cls], inner.ids, [self.sep]]).astype(np.int64)
        made = origin < 0
        at = np.where(made, 0, origin)
        kept = ~made & (new_ids == ids[at])  # the token (or the masker's [MASK]) is still there

        def carried(values: np.ndarray, fill: Any) -> np.ndarray:
            values = np.asarray(values)
            out = values[at].copy()
            out[made] = fill
            return out

        out = dict(instance)
        out["input_ids"] = new_ids
        out["original_ids"] = np.where(kept, original[at], new_ids)
        out["labels"] = carried(instance["labels"], IGNORE_INDEX)
        out["token_type_ids"] = np.zeros(len(new_ids), dtype=np.int64)
        out["maskable"] = carried(instance["maskable"], False) & kept
        out["word_starts"] = carried(instance["word_starts"], True)
        sentence_starts = np.zeros(len(new_ids), bool)
        sentence_starts[1:-1] = inner.sentence_starts
        out["sentence_starts"] = sentence_starts
        if "case_labels" in instance:
            out["case_labels"] = np.where(kept, carried(instance["case_labels"], IGNORE_INDEX), IGNORE_INDEX)
        if "pinyin_ids" in instance:  # a hidden character must not show its pinyin
            out["pinyin_ids"] = np.where(kept[:, None], carried(instance["pinyin_ids"], 0), 0)
        if "position_ids" in instance:
            out["position_ids"] = carried(instance["position_ids"], 0)
        target = original[1:last + 1]  # the original body and its [SEP] (the decoder's end of text)
        out["denoise_target"] = target
        out["denoise_inputs"] = np.concatenate([[self.cls], target[:-1]]).astype(np.int64)
        return out


class DenoisingDecoder(nn.Module):
    """A shallow post-LN Transformer decoder whose word embeddings and output projection are the encoder's."""

    def __init__(self, config: BertConfig, word_embeddings: nn.Embedding, layers: int = 1) -> None:
        super().__init__()
        hidden = config.hidden_size
        self.positions = nn.Embedding(config.max_position_embeddings, hidden)
        self.norm = nn.LayerNorm(hidden, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)
        self.layers = nn.ModuleList([
            nn.TransformerDecoderLayer(hidden, config.num_attention_heads, config.intermediate_size,
                                       dropout=config.hidden_dropout_prob, activation="gelu",
                                       layer_norm_eps=config.layer_norm_eps, batch_first=True, norm_first=False)
            for _ in range(layers)])
        self.output = nn.Linear(hidden, config.vocab_size)
        self.output.weight = word_embeddings.weight  # tied: input embeddings and output projection
        nn.init.zeros_(self.output.bias)

    def embed(self, inputs: torch.Tensor) -> torch.Tensor:
        """Word embedding (the encoder's table) plus the decoder's own learned position, normalised."""
        positions = torch.arange(inputs.shape[1], device=inputs.device)
        return self.dropout(self.norm(F.embedding(inputs, self.output.weight) + self.positions(positions)))

    def forward(self, inputs: torch.Tensor, memory: torch.Tensor, memory_padding: torch.Tensor) -> torch.Tensor:
        """Hidden states (batch, target length, hidden) for teacher-forced `inputs`; `memory_padding` is True at
        the encoder's padded positions. Padding at the end of `inputs` needs no mask: causal attention keeps
        every real position from seeing it."""
        length = inputs.shape[1]
        causal = torch.ones(length, length, dtype=torch.bool, device=inputs.device).triu(1)
        x = self.embed(inputs)
        for layer in self.layers:
            x = layer(x, memory, tgt_mask=causal, memory_key_padding_mask=memory_padding, tgt_is_causal=True)
        return x


@register("denoise", options=DenoiseOptions)
class Denoising(Objective):
    """Reconstruct the original text from the encoder's view of a noised one (BART)."""

    needs_masking = False

    def __init__(self, config: BertConfig, encoder: nn.Module, options: DenoiseOptions | None = None) -> None:
        super().__init__()
        problem = _embedding_problem("denoise", config, encoder)
        if problem:
            raise ConfigError(problem)
        options = options or DenoiseOptions()
        self.decoder = DenoisingDecoder(config, encoder.embeddings.word, options.decoder_layers)

    @classmethod
    def instance_transform(cls, options: Any, context: TransformContext) -> InstanceTransform:
        return DenoisingTransform(options or DenoiseOptions(), context)

    @classmethod
    def check_run(cls, name: str, options: Any, run: RunFacts) -> None:
        if run.format not in SINGLE_TEXT_FORMATS:
            raise ConfigError(f"objective '{name}' reconstructs one text per instance and cannot read the pair "
                              f"format data.format={run.format!r}; use data.format doc_sentences or full_sentences")
        config = getattr(run.encoder, "config", None)
        problem = _embedding_problem(name, config, run.encoder) if config is not None else None
        if problem:
            raise ConfigError(problem)

    def forward(self, encoded, batch):
        target = batch["denoise_target"]
        memory = encoded.last_hidden_state
        hidden = self.decoder(batch["denoise_inputs"], memory, ~batch["attention_mask"].bool())
        real = target != IGNORE_INDEX
        logits = self.decoder.output(hidden[real])
        if logits.shape[0] == 0:
            return {"denoise": logits.sum() * 0.0}, {"denoise_acc": accuracy(logits, target[real])}
        loss = F.cross_entropy(logits.float(), target[real])
        return {"denoise": loss}, {"denoise_acc": accuracy(logits, target[real])}


__all__ = ["DenoiseOptions", "Denoising", "DenoisingDecoder", "DenoisingTransform"]
