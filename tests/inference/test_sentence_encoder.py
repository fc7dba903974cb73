"""Bucketing and unpadding change speed, never results or their order."""

from __future__ import annotations

import numpy as np
import torch

from bertology import BertModel, Tokenizer, pool
from bertology.assets import english_fortune_files, minilm_dir, read_fortunes
from bertology.inference import SentenceEncoder


def _texts(n=40):
    texts = [t for t in read_fortunes(english_fortune_files()[0])][:n]
    return texts + ["", "short"]


def test_bucketed_unpadded_equals_plain_padded_batches():
    model = BertModel.from_pretrained(minilm_dir())
    tok = Tokenizer.from_pretrained(minilm_dir())
    texts = _texts()
    fast = SentenceEncoder(model, tok, pooling="mean", batch_size=8, max_length=64).encode(texts)
    batch = tok(texts, max_length=64, return_tensors="pt")
    with torch.no_grad():
        hidden = model(batch["input_ids"], batch["attention_mask"], batch["token_type_ids"]).last_hidden_state
    plain = pool(hidden, batch["attention_mask"], "mean").numpy()
    np.testing.assert_allclose(fast, plain, atol=1e-5)


def test_bf16_is_close_to_fp32_and_pooling_choices_differ():
    encoder = SentenceEncoder.from_pretrained(str(minilm_dir()), normalize=True, batch_size=16)
    texts = _texts(20)
    fp32 = encoder.encode(texts)
    encoder.bf16 = True
    bf16 = encoder.encode(texts)
    cosine = (fp32 * bf16).sum(1)
    assert cosine.min() > 0.98
    encoder.bf16, encoder.pooling = False, "cls"
    assert not np.allclose(encoder.encode(texts), fp32, atol=1e-3)
