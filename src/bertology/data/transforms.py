"""Instance transforms: what an objective changes in each training instance before it is batched.

Many objectives rewrite the input, not only the loss: BART's noising deletes tokens and replaces spans by
one mask, StructBERT shuffles trigrams, ERNIE 2.0 permutes segments, XLM restarts positions, UniLMv2 appends
pseudo-masks with their own attention mask. An objective states such a change as an `InstanceTransform`
(returned by its `instance_transform` class method); the collator applies every transform of the run to each
instance, after masking and before padding, with a generator that depends only on (seed, epoch, instance,
transform name). So the objective stays one module, the data path stays reproducible, and the transform
runs in the loader's workers, off the training step.

A transform receives one instance as a dict of numpy arrays:

- `input_ids` (after masking, if a masker runs), `original_ids` (before masking), `labels` (the masker's
  labels, -100 where nothing is predicted; all -100 without a masker), `token_type_ids`, `maskable`,
  `word_starts` and `sentence_starts` (bool: the first token of each sentence of the corpus; a sentence cut
  by the length budget continues unmarked), `index` and `document` (the document of the instance's first
  sentence; packed `full_sentences` instances may cross into the next documents, `doc_sentences` never do),
  and `sentence_label` for pair formats;

and returns it, changed: the token arrays may change length together (every per-token field must keep one
entry per input id), and it may add fields it declares:

- `token_fields`: per-token int arrays, padded with the given value (e.g. `{"sbo_labels": -100}`);
- `row_fields`: per-instance int arrays of any length, padded along their first axis with the given value
  to the longest in the batch (e.g. span boundaries, `{"spans": -1}`);
- `square_fields`: per-instance (n, n) arrays over the tokens, padded to (width, width) (e.g. attention
  masks), padded with the given value;
- `scalar_fields`: one int per instance (e.g. a permutation class).

`position_ids` is a per-token field every transform may set (padded with 0); the collator passes it on when
present.
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

Instance = dict[str, Any]

#: the per-token fields every instance has; a transform that changes the length changes all of them
TOKEN_FIELDS = ("input_ids", "original_ids", "labels", "token_type_ids", "maskable", "word_starts", "sentence_starts")


@dataclass(frozen=True)
class TransformContext:
    """What a transform may need from the tokenizer: the special ids and the vocabulary size."""

    vocab_size: int
    cls_token_id: int
    sep_token_id: int
    pad_token_id: int
    mask_token_id: int
    unk_token_id: int
    #: ids a transform must never draw as a random replacement
    special_ids: frozenset[int] = frozenset()

    @classmethod
    def from_tokenizer(cls, tokenizer: Any) -> TransformContext:
        specials = {getattr(tokenizer, f"{name}_token_id", None) for name in ("cls", "sep", "pad", "mask", "unk")}
        specials |= set(getattr(tokenizer, "all_special_ids", ()) or ())
        return cls(int(tokenizer.vocab_size), int(tokenizer.cls_token_id), int(tokenizer.sep_token_id),
                   int(tokenizer.pad_token_id), int(tokenizer.mask_token_id), int(tokenizer.unk_token_id),
                   frozenset(int(i) for i in specials if i is not None))


class InstanceTransform:
    """Base class: `__call__(instance, rng) -> instance`, plus the fields it adds (see the module doc).

    Subclasses must be picklable (the collator runs in loader worker processes): keep plain data in them.
    """

    #: names the transform's random stream; two transforms of one run must differ
    name: ClassVar[str] = "transform"
    token_fields: ClassVar[Mapping[str, int]] = {}
    row_fields: ClassVar[Mapping[str, int]] = {}
    square_fields: ClassVar[Mapping[str, int]] = {}
    scalar_fields: ClassVar[tuple[str, ...]] = ()

    def __call__(self, instance: Instance, rng: np.random.Generator) -> Instance:
        raise NotImplementedError

    def rng_for(self, seed: int, epoch: int, index: int) -> np.random.Generator:
        """A generator that depends only on (seed, epoch, instance index, this transform's name)."""
        return np.random.default_rng([seed, epoch, index, zlib.crc32(self.name.encode())])


def check_instance(instance: Instance, transform: InstanceTransform) -> None:
    """Every per-token field one entry per input id after `transform` ran (a broken transform fails loudly
    here, naming itself, instead of misaligning labels silently)."""
    n = len(instance["input_ids"])
    for field in (*TOKEN_FIELDS, "case_labels", "pinyin_ids", "position_ids", *transform.token_fields):
        if field in instance and len(instance[field]) != n:
            raise RuntimeError(f"transform '{transform.name}' left {field} with {len(instance[field])} entries "
                               f"for {n} input ids")
    for field in transform.square_fields:
        if field in instance and np.shape(instance[field]) != (n, n):
            raise RuntimeError(f"transform '{transform.name}' gave {field} the shape {np.shape(instance[field])}, "
                               f"expected ({n}, {n})")


__all__ = ["TOKEN_FIELDS", "Instance", "InstanceTransform", "TransformContext", "check_instance"]
