"""A pretraining config is checked whole at load: every section, used by the run or not, with the file, the key
path and the nearest key in each error; nothing is read from disk besides the config itself."""

from __future__ import annotations

import re
from importlib import resources

import pytest
import yaml

from bertology.errors import ConfigError
from bertology.objectives import OBJECTIVES, Objective, PretrainingModel, RtdOptions
from bertology.runs.config import load_run_config, read_source
from bertology.runs.pretrain import ModelSpec, PretrainConfig, load_config, run_config

PATHS = ["corpus=c", "tokenizer=t"]


def recipe(name: str) -> dict:
    return yaml.safe_load((resources.files("bertology") / "recipes" / f"{name}.yaml").read_text(encoding="utf-8"))


def write(tmp_path, data: dict) -> str:
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump({"corpus": "c", "tokenizer": "t", **data}), encoding="utf-8")
    return str(path)


def rename(data: dict, path: str, new: str) -> dict:
    *parents, last = path.split(".")
    node = data
    for part in parents:
        node = node[part]
    node[new] = node.pop(last)
    return data


def load_error(source: str, overrides: list[str] | None = None) -> str:
    with pytest.raises(ConfigError) as info:
        load_config(source, overrides)
    return str(info.value)


# ------------------------------------------------------------------------------------------------- typos
@pytest.mark.parametrize(("name", "key", "typo", "section"), [
    ("bert", "masking.rate", "rat", "masking"),
    ("bert", "data.format", "formt", "data"),
    ("bert", "objectives.mlm", "mlmm", "objectives"),
    ("bert", "train.learning_rate", "learning_rte", "train"),
    ("albert", "model.embedding_size", "embeding_size", "model"),
    ("electra", "objective_options.rtd.generator_layers", "generator_layer", "objective_options.rtd"),
    ("electra", "objective_options.rtd", "rdt", "objective_options"),
])
def test_a_typo_in_a_file_names_the_file_the_key_path_and_the_nearest_key(tmp_path, name, key, typo, section):
    source = write(tmp_path, rename(recipe(name), key, typo))
    message = load_error(source)
    assert message.startswith(f"{source}: {section}: "), message
    assert f"'{typo}'" in message and f"did you mean '{key.split('.')[-1]}'?" in message, message


@pytest.mark.parametrize(("override", "section", "wanted"), [
    ("masking.rat=0.2", "masking", "rate"),
    ("data.formt=full_sentences", "data", "format"),
    ("model.hiden_size=64", "model", "hidden_size"),
    ("objective_options.rtd.generator_layer=1", "objective_options.rtd", "generator_layers"),
    ("train.learning_rte=0.1", "train", "learning_rate"),
    ("model.family=albrt", "model.family", "albert"),
    ("model.preset=minii", "model", "mini"),
    ("masking.strategy=whole_wrd", "masking", "whole_word"),
    ("data.format=ful_sentences", "data", "full_sentences"),
    ("objectives={mlmm: 1.0}", "objectives", "mlm"),
])
def test_a_typo_in_an_override_names_the_recipe(override, section, wanted):
    message = load_error("bert", [*PATHS, override])
    assert message.startswith(f"recipe 'bert': {section}: "), message
    assert f"did you mean '{wanted}'?" in message, message


def test_sections_the_run_does_not_use_are_checked_too():
    sop_only = [*PATHS, "objectives={sop: 1.0}"]
    load_config("albert", sop_only)  # no masking needed, and none is built
    message = load_error("albert", [*sop_only, "masking.rat=0.2"])
    assert message.startswith("recipe 'albert': masking: unknown field 'rat'; did you mean 'rate'?"), message
    message = load_error("albert", [*sop_only, "masking.rate=2"])
    assert message.startswith("recipe 'albert': masking: field 'rate' must lie in (0, 1]"), message
    # options of an objective the run does not train
    message = load_error("bert", [*PATHS, "objective_options.rtd.temperture=2"])
    assert "objective_options.rtd: unknown field 'temperture'; did you mean 'temperature'?" in message


def test_model_fields_are_the_familys_own():
    load_config("bert", [*PATHS, "model.family=albert", "model.embedding_size=32"])
    message = load_error("bert", [*PATHS, "model.embedding_size=32"])  # BertConfig has no embedding_size
    assert message == ("recipe 'bert': model: unknown field for family 'bert': 'embedding_size' (family albert); "
                       "set 'family' to use them")
    message = load_error("albert", [*PATHS, "model.famly=albert"])  # the typo is named, not albert's fields
    assert "unknown field 'famly'; did you mean 'family'?" in message
    message = load_error("bert", [*PATHS, "model.family=chinesebert", "model.pinyin_embeding_dim=16"])
    assert "did you mean 'pinyin_embedding_dim'?" in message


# --------------------------------------------------------------------------------- types and value ranges
@pytest.mark.parametrize(("override", "where", "name"), [
    ("masking.rate=high", "masking", "rate"),
    ("data.max_length=2.5", "data", "max_length"),
    ("model.hidden_size=big", "model", "hidden_size"),
    ("objectives.rtd=much", "objectives", "rtd"),
    ("train.batch_size='8'", "train", "batch_size"),
    ("seed=x", "", "seed"),
    ("objective_options.rtd.temperature=hot", "objective_options.rtd", "temperature"),
])
def test_a_wrong_type_names_the_key(override, where, name):
    message = load_error("electra", [*PATHS, override])
    prefix = f"recipe 'electra': {where}: " if where else "recipe 'electra': "
    assert message.startswith(f"{prefix}field '{name}' must be "), message


@pytest.mark.parametrize(("override", "where", "name"), [
    ("masking.rate=1.5", "masking", "rate"),
    ("masking.mask_prob=-0.1", "masking", "mask_prob"),
    ("data.max_length=4", "data", "max_length"),
    ("data.eval_fraction=1.0", "data", "eval_fraction"),
    ("model.hidden_size=-64", "model", "hidden_size"),
    ("model.num_attention_heads=3", "model", "hidden_size"),  # 256 is not divisible by 3
    ("objective_options.rtd.generator_layers=0", "objective_options.rtd", "generator_layers"),
    ("objective_options.rtd.temperature=0", "objective_options.rtd", "temperature"),
    ("objectives.rtd=-1", "objectives", "rtd"),
    ("train.learning_rate=-1", "train", "learning_rate"),
    ("train.warmup_ratio=1.5", "train", "warmup_ratio"),
])
def test_an_impossible_value_names_the_key(override, where, name):
    message = load_error("electra", [*PATHS, override])
    assert message.startswith(f"recipe 'electra': {where}: "), message
    assert f"'{name}'" in message, message


def test_objective_combinations_are_checked_at_load():
    assert "cannot be combined with 'mlm'" in load_error("electra", [*PATHS, "objectives={rtd: 1.0, mlm: 1.0}"])
    assert "one sentence-pair objective" in load_error("bert", [*PATHS, "objectives={mlm: 1.0, sop: 1.0, nsp: 1.0}"])
    assert "at least one objective" in load_error("bert", [*PATHS, "objectives={}"])
    message = load_error("ambert", [*PATHS, "objectives={mlm: 1.0, nsp: 1.0}"])
    assert message.startswith("recipe 'ambert': objectives: AMBERT pretrains with objectives {mlm: 1.0}"), message


def test_an_objective_without_options_refuses_them():
    message = load_error("bert", [*PATHS, "objective_options.mlm.rate=1"])
    assert "objective_options.mlm: the objective 'mlm' takes no options" in message


# ------------------------------------------------------------------------------------------ the sources
def test_sources_name_themselves_in_errors(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("model: [unclosed\n", encoding="utf-8")
    assert load_error(str(bad)).startswith(f"{bad}: not valid YAML")
    bad.write_text("- a list\n", encoding="utf-8")
    assert load_error(str(bad)).startswith(f"{bad}: expected a mapping")
    assert "did you mean 'bert'?" in load_error("berts")
    with pytest.raises(ConfigError, match="no such config file$"):
        read_source(tmp_path / "missing.yaml")  # recipes only where the run type has them


def test_read_source_gives_data_label_and_folder(tmp_path):
    path = tmp_path / "sub" / "run.yaml"
    path.parent.mkdir()
    path.write_text("seed: 3\n", encoding="utf-8")
    assert read_source(path) == ({"seed": 3}, str(path), path.parent)
    data, label, base = read_source("electra", recipes=True)
    assert label == "recipe 'electra'" and base is None and data["objectives"] == {"rtd": 1.0}


def test_loaded_sections_are_typed_and_train_inherits_the_runs_seed_and_weights():
    config = load_config("electra", [*PATHS, "seed=7"])
    assert config.model == ModelSpec(family="bert", preset="mini")
    assert config.objective_options == {"rtd": RtdOptions(generator_layers=1, temperature=1.0)}
    assert config.train.seed == 7 and config.train.loss_weights == {"generator": 1.0, "rtd": 50.0}
    config = load_config("bert", [*PATHS, "seed=7", "train.seed=1"])
    assert config.train.seed == 1 and config.train.loss_weights == {"mlm": 1.0, "nsp": 1.0}
    assert load_run_config(PretrainConfig, "bert", PATHS, recipes=True) == load_config("bert", PATHS)


def test_to_dict_loads_back_as_the_same_config(tmp_path):
    for name in ("albert", "electra", "ambert"):
        config = load_config(name, [*PATHS, "model.from_pretrained=somewhere"])
        again = load_config(write(tmp_path, run_config(config)))  # as the run folder's config.yaml holds it
        assert run_config(again) == run_config(config), name


def test_paths_in_a_file_are_relative_to_the_file_on_the_command_line_to_the_working_directory(tmp_path):
    folder = tmp_path / "configs"
    folder.mkdir()
    path = folder / "run.yaml"
    path.write_text(yaml.safe_dump({"corpus": "c", "tokenizer": "../t", "run_dir": "runs/x",
                                    "model": {"from_pretrained": "enc"}}), encoding="utf-8")
    config = load_config(str(path))
    assert (config.corpus, config.tokenizer, config.run_dir) == (
        str(folder / "c"), str(folder / "../t"), str(folder / "runs/x"))
    assert config.model.from_pretrained == str(folder / "enc")
    config = load_config(str(path), ["corpus=mine", "run_dir=here"])  # --corpus, --run-dir, --set: the user's own
    assert (config.corpus, config.run_dir, config.tokenizer) == ("mine", "here", str(folder / "../t"))
    assert load_config("bert", PATHS).corpus == "c"  # a recipe has no folder: relative to the working directory


# ---------------------------------------------------------------------------------- objectives registry
def test_an_objective_declares_its_options_and_its_conflicts():
    import dataclasses

    from bertology import BertConfig

    @dataclasses.dataclass
    class ProbeOptions:
        width: int = 4

    @OBJECTIVES.register("probe", options=ProbeOptions)
    class Probe(Objective):
        conflicts = ("capitalization",)

        def __init__(self, config, encoder, options):
            super().__init__()
            self.options = options

    cfg = BertConfig(vocab_size=60, hidden_size=32, num_hidden_layers=1, num_attention_heads=4,
                     intermediate_size=48, max_position_embeddings=40)
    try:
        model = PretrainingModel(cfg, ["mlm", "probe"], {"probe": {"width": 8}})
        assert model.objectives["probe"].options == ProbeOptions(width=8)
        assert PretrainingModel(cfg, ["probe"]).objectives["probe"].options == ProbeOptions()
        with pytest.raises(ConfigError, match="objective 'probe' cannot be combined with 'capitalization'"):
            PretrainingModel(cfg, ["probe", "capitalization"])
        with pytest.raises(ConfigError, match=re.escape("objective_options.probe: unknown field 'widht'")):
            PretrainingModel(cfg, ["probe"], {"probe": {"widht": 8}})
        message = load_error("bert", [*PATHS, "objectives={probe: 1.0}", "objective_options.probe.width=two"])
        assert "objective_options.probe: field 'width' must be int" in message
    finally:
        OBJECTIVES.remove("probe")
