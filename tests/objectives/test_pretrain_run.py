"""`bertology pretrain` end to end on real Chinese text: recipe, overrides, run folder, report, resume."""

from __future__ import annotations

import json
from itertools import islice

import pytest
import torch

from bertology import (
    AmbertTokenizer,
    BertForPreTraining,
    ChineseBertTokenizer,
    Tokenizer,
    WordPieceTokenizer,
    load,
)
from bertology.assets import peoples_daily_path, peoples_daily_sentences
from bertology.cli.main import main
from bertology.data import TokenCorpus, prepare_corpus
from bertology.data.coarse import CoarseVocabulary
from bertology.errors import ConfigError
from bertology.runs.pretrain import Pretraining, apply_overrides, load_config, recipe_names


@pytest.fixture(scope="module")
def chinese(tmp_path_factory):
    """A small People's Daily corpus with jieba word starts, and a character vocabulary for it."""
    root = tmp_path_factory.mktemp("zh")
    lines = ["".join(words) for words in islice(peoples_daily_sentences(), 600)]
    tok = Tokenizer.train(iter(lines), vocab_size=2500, limit_alphabet=3000, min_frequency=1)
    tok.save_pretrained(root / "tok")
    source = root / "pd.txt"
    with open(peoples_daily_path(), encoding="utf-8") as handle:
        source.write_text("".join(islice(handle, 600)), encoding="utf-8")
    prepare_corpus([source], root / "corpus", tok, input_format="pku", chinese_words="jieba", progress=False)
    return root


def _overrides(root, run, steps=12):
    return [f"corpus={root / 'corpus'}", f"tokenizer={root / 'tok'}", f"run_dir={run}",
            "model.preset=tiny", "model.hidden_size=64", "model.num_attention_heads=2",
            "model.intermediate_size=128", "data.max_length=64", "data.eval_fraction=0.05",
            f"train.max_steps={steps}", "train.batch_size=8", "train.eval_every=6", "train.save_every=6",
            "train.log_every=2", "train.progress=false", "train.bf16=false"]


def test_recipes_exist_and_load():
    assert {"bert", "roberta", "chinese-wwm", "spanbert", "electra", "albert", "bart-denoise", "simcse", "infoword",
            "xlm-tlm", "ernie2", "structbert", "unilmv2"} <= set(recipe_names())
    for name in recipe_names():
        config = load_config(name, ["corpus=x", "tokenizer=y"])
        assert config.objectives and config.train


def test_chinese_wwm_recipe_runs_and_reports(chinese, tmp_path):
    run = tmp_path / "run"
    config = load_config("chinese-wwm", _overrides(chinese, run))
    pretraining = Pretraining.build(config)
    assert type(pretraining.collator.masker).__name__ == "WholeWordMasker"
    corpus = TokenCorpus(chinese / "corpus")
    lines = (chinese / "pd.txt").read_text(encoding="utf-8").splitlines()
    assert corpus.num_documents == sum(1 for line in lines if line.strip())  # each non-empty line, one document
    result = pretraining.run()
    assert result.step == 12 and result.stopped == "finished"
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    train = [r for r in rows if r["split"] == "train"]
    assert {"loss/mlm", "loss/nsp", "mlm_acc", "nsp_acc"} <= set(train[0])
    assert [r["step"] for r in rows if r["split"] == "eval"] == [6, 12]
    report = (run / "report.md").read_text()
    assert "eval/mlm_acc" in report and "unigram baseline" in report
    evaluation = json.loads((run / "eval.json").read_text())
    assert 0 <= evaluation["unigram_baseline_mlm_acc"] <= 1 and 0 <= evaluation["eval/mlm_acc"] <= 1
    model = BertForPreTraining.from_pretrained(run / "model")  # exported in the Hugging Face layout
    assert model.config.hidden_size == 64
    again = load_config(str(run / "config.yaml"))  # the run folder's config loads back as the same run
    assert again.to_dict() == config.to_dict()


def test_cli_pretrain_and_resume(chinese, tmp_path, capsys):
    run = tmp_path / "cli"
    # a longer run on resume keeps it exact only under a constant schedule (a linear one is stretched)
    constant = ["train.schedule=constant"]
    args = ["pretrain", "roberta"] + [x for o in _overrides(chinese, run, steps=6) + constant for x in ("--set", o)]
    assert main(args) == 0
    assert "finished at step 6" in capsys.readouterr().out
    args = ["pretrain", "roberta"] + [x for o in _overrides(chinese, run, steps=10) + constant for x in ("--set", o)]
    assert main(args + ["--resume"]) == 0
    steps = [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines()
             if json.loads(line)["split"] == "train"]
    assert steps == [2, 4, 6, 8, 10]  # continued from step 6, nothing logged twice


@pytest.mark.parametrize("recipe,exported", [("spanbert", "BertForMaskedLM"), ("electra", "BertModel"),
                                             ("bert", "BertForPreTraining"), ("albert", "AlbertForPreTraining")])
def test_other_recipes_train_a_few_steps(chinese, tmp_path, recipe, exported):
    run = tmp_path / recipe
    extra = ["model.embedding_size=32"] if recipe == "albert" else []
    config = load_config(recipe, _overrides(chinese, run, steps=4) + ["train.eval_every=0"] + extra)
    result = Pretraining.build(config).run()
    assert result.step == 4
    losses = [json.loads(line)["loss"] for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert all(isinstance(x, float) for x in losses)
    assert type(load(run / "model")).__name__ == exported
    exported_tokenizer = Tokenizer.from_pretrained(run / "model")  # every model folder holds its tokenizer
    assert type(exported_tokenizer) is WordPieceTokenizer
    assert exported_tokenizer.vocab == Tokenizer.from_pretrained(chinese / "tok").vocab


def test_bertology_embed_reads_an_exported_model_folder_alone(chinese, tmp_path):
    run = tmp_path / "bert"
    config = load_config("bert", _overrides(chinese, run, steps=2) + ["train.eval_every=0"])
    Pretraining.build(config).run()
    texts = tmp_path / "texts.txt"
    texts.write_text("中国人民很好。\n经济发展。\n", encoding="utf-8")
    assert main(["embed", "--model", str(run / "model"), str(texts), "-o", str(tmp_path / "out.jsonl")]) == 0
    rows = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text(encoding="utf-8").splitlines()]
    assert [r["line"] for r in rows] == [1, 2] and len(rows[0]["embedding"]) == 64


def test_config_errors_name_the_field(tmp_path):
    with pytest.raises(ConfigError, match="corpus"):
        load_config("bert", ["tokenizer=x"])
    with pytest.raises(ConfigError, match="no such config file"):
        load_config(str(tmp_path / "missing.yaml"))
    with pytest.raises(ConfigError, match="key.subkey=value"):
        apply_overrides({}, ["novalue"])
    bad = tmp_path / "bad.yaml"
    bad.write_text("train: {learning_rate: fast}\ncorpus: a\ntokenizer: b\n")
    with pytest.raises(ConfigError, match="learning_rate"):  # at load now, before any data is read
        load_config(str(bad))
    with pytest.raises(ConfigError, match="lerning_rate"):
        load_config("bert", ["corpus=a", "tokenizer=b", "train.lerning_rate=1"])


def test_chinesebert_recipe_needs_pinyin_and_trains_with_it(chinese, tmp_path):
    tok = Tokenizer.from_pretrained(chinese / "tok")
    with pytest.raises(ConfigError, match="--record-pinyin"):
        Pretraining.build(load_config("chinesebert", _overrides(chinese, tmp_path / "x", steps=2)))
    prepare_corpus([chinese / "pd.txt"], tmp_path / "corpus", tok, input_format="pku", chinese_words="jieba",
                   record_pinyin=True, progress=False)
    corpus = TokenCorpus(tmp_path / "corpus")
    assert corpus.has_pinyin and corpus.pinyin(0).shape == (len(corpus.sentence(0)), 8)
    run = tmp_path / "run"
    overrides = _overrides(chinese, run, steps=4) + [f"corpus={tmp_path / 'corpus'}", "train.eval_every=0",
                                                     "model.glyph_size=16", "model.pinyin_embedding_dim=16"]
    pretraining = Pretraining.build(load_config("chinesebert", overrides))
    batch = pretraining.collator([pretraining.train_set[i] for i in range(4)], epoch=0)
    hidden = batch["labels"] != -100
    changed = hidden & (batch["input_ids"] != batch["labels"])
    assert (batch["pinyin_ids"][changed] == 0).all()  # a masked character does not give its pinyin away
    assert batch["pinyin_ids"][~hidden & batch["attention_mask"].bool()].any()
    result = pretraining.run()
    assert result.step == 4
    assert type(load(run / "model")).__name__ == "ChineseBertForMaskedLM"
    assert type(Tokenizer.from_pretrained(run / "model")) is ChineseBertTokenizer  # it reads pinyin


def test_roberta_recipe_with_byte_level_bpe(tmp_path):
    import transformers

    from bertology.assets import english_fortune_files, read_fortunes
    from bertology.tokenization import ByteLevelBPETokenizer

    texts = [t for f in english_fortune_files()[:6] for t in read_fortunes(f)][:1500]
    tok = ByteLevelBPETokenizer.train(iter(texts), vocab_size=1200, min_frequency=2)
    tok.save_pretrained(tmp_path / "tok")
    source = tmp_path / "en.txt"
    source.write_text("\n\n".join(texts), encoding="utf-8")
    prepare_corpus([source], tmp_path / "corpus", tok, progress=False)
    run = tmp_path / "run"
    overrides = [f"corpus={tmp_path / 'corpus'}", f"tokenizer={tmp_path / 'tok'}", f"run_dir={run}",
                 "model.family=roberta", "model.preset=tiny", "data.max_length=64", "train.max_steps=4",
                 "train.batch_size=8", "train.eval_every=0", "train.progress=false", "train.bf16=false"]
    result = Pretraining.build(load_config("roberta", overrides)).run()
    assert result.step == 4
    ours = load(run / "model")
    assert type(Tokenizer.from_pretrained(run / "model")) is ByteLevelBPETokenizer
    ref = transformers.RobertaForMaskedLM.from_pretrained(run / "model").eval()
    ids = torch.tensor([tok.encode(texts[0])[:40]])
    with torch.no_grad():
        torch.testing.assert_close(ours.eval()(ids).logits, ref(ids).logits, atol=1e-5, rtol=0)


def test_ambert_recipe_trains_both_granularities(chinese, tmp_path):
    run = tmp_path / "ambert"
    overrides = _overrides(chinese, run, steps=4) + ["train.eval_every=4", "model.coarse_vocab_size=500"]
    pretraining = Pretraining.build(load_config("ambert", overrides))
    assert pretraining.model.config.coarse_vocab_size <= 505
    result = pretraining.run()
    assert result.step == 4
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert {"loss/mlm", "loss/mlm_coarse", "mlm_acc", "mlm_coarse_acc"} <= set(rows[0])
    assert (run / "coarse_vocab.json").is_file()
    model = load(run / "model")
    assert type(model).__name__ == "AmbertModel" and model.coarse.encoder is model.fine.encoder
    tokenizer = Tokenizer.from_pretrained(run / "model")  # the model folder alone is enough to predict
    assert type(tokenizer) is AmbertTokenizer
    assert tokenizer.coarse_vocab == CoarseVocabulary.load(run / "coarse_vocab.json")
    assert len(tokenizer.coarse_vocab) == model.config.coarse_vocab_size
    batch = tokenizer(["中国人民很好。", "经济发展"])
    with torch.no_grad():
        out = model.eval()(**batch)
    assert out.coarse.last_hidden_state.shape[:2] == batch["coarse_ids"].shape
    assert (batch["coarse_ids"] > 4).any()  # words of the run's coarse vocabulary


def test_cli_pretrain_on_the_cpu(chinese, tmp_path, capsys):
    run = tmp_path / "cpu"
    args = ["pretrain", "bert", "--device", "cpu"] + [x for o in _overrides(chinese, run, steps=2)
                                                      for x in ("--set", o)]
    assert main(args) == 0
    assert "finished at step 2" in capsys.readouterr().out
    assert load_config(str(run / "config.yaml")).train.device == "cpu"


def test_mlm_only_export_of_an_encoder_with_a_pooler(tmp_path, tiny_config):
    """Continuing MLM from a folder whose encoder has a pooler (MiniLM): the masked-LM export has no pooler
    (as transformers' BertForMaskedLM), so the pooler is left out instead of failing at the end of the run."""
    from bertology import BertForMaskedLM, load
    from bertology.models.heads import Pooler
    from bertology.objectives import PretrainingModel

    torch.manual_seed(0)
    model = PretrainingModel(tiny_config, ["mlm"])
    model.bert.pooler = Pooler(tiny_config.hidden_size)
    model.save_pretrained(tmp_path / "model")
    exported = load(tmp_path / "model")
    assert isinstance(exported, BertForMaskedLM)
    torch.testing.assert_close(exported.bert.encoder.layers[0].ffn.up.weight, model.bert.encoder.layers[0].ffn.up.weight)
