"""Every pretraining objective the literature adds to MLM, on every family: a training step works (finite
losses, gradients reach the encoder) where the combination makes sense, and where it does not the run is refused
when built, naming the objective. The table here is the one docs/pretraining.md gives users."""

from __future__ import annotations

import json
from itertools import islice

import pytest
import torch

from bertology import Tokenizer
from bertology.assets import peoples_daily_path, peoples_daily_sentences
from bertology.data import prepare_corpus
from bertology.errors import ConfigError
from bertology.runs.pretrain import Pretraining, load_config

FAMILIES = ("bert", "albert", "roberta", "chinesebert")
#: objective -> families that refuse it (and why, in the docs)
REFUSED = {
    "sbo": (), "word_order": (), "token_document": (), "sentence_reordering": (),
    "denoise": ("albert",),  # its decoder ties to word embeddings as wide as the hidden size
    "simcse": ("chinesebert",),  # re-encodes texts from ids alone: no pinyin for them
    "infoword": ("chinesebert",),  # encodes n-grams alone: the same
    "pmlm": ("roberta", "chinesebert"),  # pseudo-masks take the positions of the tokens they stand for
}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """200 People's Daily lines with jieba word starts and pinyin (ChineseBERT reads it, the others ignore it)."""
    root = tmp_path_factory.mktemp("families")
    lines = ["".join(words) for words in islice(peoples_daily_sentences(), 200)]
    tok = Tokenizer.train(iter(lines), vocab_size=2000, limit_alphabet=3000, min_frequency=1)
    tok.save_pretrained(root / "tok")
    source = root / "pd.txt"
    with open(peoples_daily_path(), encoding="utf-8") as handle:
        source.write_text("".join(islice(handle, 200)), encoding="utf-8")
    prepare_corpus([source], root / "corpus", tok, input_format="pku", chinese_words="jieba", record_pinyin=True,
                   progress=False)
    return root


def _config(root, family: str, objective: str):
    objectives = {"mlm": 1.0, objective: 1.0}
    overrides = [f"corpus={root / 'corpus'}", f"tokenizer={root / 'tok'}", f"run_dir={root / family / objective}",
                 f"model.family={family}", "model.preset=tiny", "model.hidden_size=32", "model.num_attention_heads=2",
                 "model.intermediate_size=64", "data.format=doc_sentences", "data.max_length=64",
                 f"objectives={json.dumps(objectives)}", f"train.loss_weights={json.dumps(objectives)}",
                 "train.batch_size=4", "train.bf16=false"]
    if family == "albert":
        overrides.append("model.embedding_size=16")
    if objective == "pmlm":
        overrides += ["objective_options={pmlm: {max_predictions: 8}}"]
        if family in ("bert", "albert"):
            overrides.append("model.type_vocab_size=3")
    return load_config("bert", overrides)


@pytest.mark.parametrize("objective", sorted(REFUSED))
@pytest.mark.parametrize("family", FAMILIES)
def test_objective_on_family(corpus, family, objective):
    config = _config(corpus, family, objective)
    if family in REFUSED[objective]:
        with pytest.raises(ConfigError, match=f"'{objective}'"):
            Pretraining.build(config)
        return
    torch.manual_seed(0)
    run = Pretraining.build(config)
    batch = run.collator([run.train_set[i] for i in range(4)], epoch=0)
    out = run.model.train()(**batch)
    assert {"mlm", objective} <= set(out.losses)
    for name, loss in out.losses.items():
        assert torch.isfinite(loss), name
    sum(out.losses.values()).backward()
    assert run.model.bert.embeddings.word.weight.grad.abs().sum() > 0
