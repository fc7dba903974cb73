"""The fine-tuning config language: every section typed and checked at load, errors with file, key path and
a suggestion; kind options validated per kind; regularizers by name, with the older fields as aliases."""

from __future__ import annotations

import copy
from dataclasses import asdict
from pathlib import Path

import pytest
import yaml

from bertology.errors import ConfigError
from bertology.finetuning.adversarial import FGMOptions, PGDOptions
from bertology.finetuning.ensemble import AverageOptions
from bertology.finetuning.examples import Columns
from bertology.finetuning.model import HeadConfig
from bertology.finetuning.regularization import MixoutOptions, SelfDistillationOptions
from bertology.finetuning.taskdata import TaskConfig
from bertology.finetuning.tasks import QAOptions, TaggingOptions
from bertology.runs.finetune import FinetuneConfig, Finetuning, finetune_config, load_config
from bertology.utils.typed import load_yaml

CONFIGS = Path(__file__).resolve().parents[2] / "configs" / "finetune"
FILES = sorted(CONFIGS.glob("*.yaml"))
WORDNET = CONFIGS / "wordnet-minilm.yaml"


def _keys(data: dict, path: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], str]]:
    """(key path of the section, key) for every key, nested ones included; task names are the user's, not keys."""
    found = []
    for key, value in data.items():
        found.append((path, key))
        if isinstance(value, dict):
            if path == () and key == "tasks":
                for name, task in value.items():
                    found += _keys(task, ("tasks", name))
            else:
                found += _keys(value, (*path, key))
    return found


def _typo(key: str) -> str:
    middle = len(key) // 2
    return key[:middle] + key[middle] + key[middle:]  # a doubled letter: "pooling" -> "poooling"


def _renamed(data: dict, path: tuple[str, ...], key: str, new: str) -> dict:
    data = copy.deepcopy(data)
    node = data
    for part in path:
        node = node[part]
    items = list(node.items())
    node.clear()
    node.update((new if k == key else k, v) for k, v in items)
    return data


CASES = [(f, path, key) for f in FILES for path, key in _keys(load_yaml(f.read_text(encoding="utf-8")))]


def test_the_configs_load():
    assert len(FILES) >= 3
    for path in FILES:
        config = load_config(path)
        assert config.tasks and config.train.learning_rate > 0


@pytest.mark.parametrize(("file", "path", "key"), CASES,
                         ids=[f"{f.stem}:{'.'.join((*p, k))}" for f, p, k in CASES])
def test_a_typo_in_any_key_names_file_key_path_and_the_key_meant(tmp_path, file, path, key):
    data = load_yaml(file.read_text(encoding="utf-8"))
    target = tmp_path / file.name
    target.write_text(yaml.safe_dump(_renamed(data, path, key, _typo(key)), allow_unicode=True), encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_config(target)
    message = str(info.value)
    prefix = f"{target}: " + (f"{'.'.join(path)}: " if path else "")
    assert message.startswith(prefix), message
    assert f"'{_typo(key)}'" in message and f"did you mean '{key}'?" in message, message


BAD_VALUES = [
    ("method=lorra", "field 'method' must be one of ['full', 'frozen', 'adapter', 'lora'], got 'lorra'; "
                     "did you mean 'lora'?"),
    ("sampling=uniformly", "field 'sampling' must be one of"),
    ("on_error=ignore", "field 'on_error' must be one of"),
    ("unfreezing=gradually", "did you mean 'gradual'?"),
    ("seed='7'", "field 'seed' must be int, got str '7'"),
    ("temperature=0", "field 'temperature' must be positive"),
    ("layerwise_lr_decay=1.5", "field 'layerwise_lr_decay' must lie in (0, 1]"),
    ("head_learning_rate=-1", "field 'head_learning_rate' must be positive or null"),
    ("stages=[[lexname], [nope]]", "stages name unknown task(s) ['nope']"),
    ("tasks={}", "field 'tasks' needs at least one task"),
    ("tasks.lexname.kind=clasification", "tasks.lexname.kind: unknown task kind 'clasification'; "
                                         "did you mean 'classification'?"),
    ("tasks.lexname.max_length=long", "tasks.lexname: field 'max_length' must be int, got str 'long'"),
    ("tasks.lexname.max_length=0", "tasks.lexname: field 'max_length' must be positive"),
    ("tasks.lexname.split=[0.5, 0.6]", "tasks.lexname: field 'split'"),
    ("tasks.lexname.clean=maybe", "tasks.lexname: field 'clean' must be bool"),
    ("tasks.lexname.columns.text=''", "tasks.lexname.columns: field 'text' must be a non-empty column name"),
    ("tasks.lexname.columns=[text]", "tasks.lexname.columns: expected a mapping of fields"),
    ("tasks.lexname.head.pooling=maen", "tasks.lexname.head: field 'pooling' must be one of "
                                        "['auto', 'cls', 'mean', 'max', 'pooler'], got 'maen'; did you mean 'mean'?"),
    ("tasks.lexname.head.layers=scalarmix", "did you mean 'scalar_mix'?"),
    ("tasks.lexname.head.dropout=1.5", "tasks.lexname.head: field 'dropout' must lie in [0, 1)"),
    ("tasks.lexname.head.layer=3", "tasks.lexname.head: field 'layer' goes with layers: layer"),
    ("tasks.lexname.head.multi_label=yes please", "tasks.lexname.head: field 'multi_label' must be bool"),
    ("tasks.lexname.doc_stride=32", "tasks.lexname: unknown field 'doc_stride'"),
    ("train.learning_rate=-1", "train: field 'learning_rate' must be positive"),
    ("train.epochs='3'", "train: field 'epochs' must be int"),
    ("train.batch_size=0", "train: field 'batch_size' must be positive"),
    ("train.shedule=cosine", "train: unknown field 'shedule'; did you mean 'schedule'?"),
    ("peft.rank=0", "peft: field 'rank' must be a positive integer"),
    ("peft.activation=gleu", "peft: field 'activation' must be one of"),
    ("peft.rnak=4", "peft: unknown field 'rnak'; did you mean 'rank'?"),
    ("regularizers.pdg={}", "regularizers: unknown regularizer 'pdg'; did you mean 'pgd'?"),
    ("regularizers.pgd.steps=0", "regularizers.pgd: field 'steps' must be an integer >= 1"),
    ("regularizers.pgd.steps='3'", "regularizers.pgd: field 'steps' must be int"),
    ("regularizers.smart.noise_var=1e-5", "regularizers.smart: unknown field 'noise_var'; did you mean 'noise_std'?"),
    ("regularizers.mixout.p=1.0", "regularizers.mixout: field 'p' must lie in (0, 1)"),
    ("regularizers.self_ensemble.mode=median", "regularizers.self_ensemble: field 'mode' must be one of "
                                               "['mean', 'ema'], got 'median'; did you mean 'mean'?"),
    ("regularizers.self_distillation.weight=-1", "regularizers.self_distillation: field 'weight' must be >= 0"),
    ("adversarial={name: vat}", "adversarial: unknown method 'vat'"),
    ("adversarial={name: pgd, stepz: 2}", "adversarial: unknown field 'stepz'; did you mean 'steps'?"),
    ("mixout=1.5", "mixout: field 'p' must lie in (0, 1)"),
    ("self_ensemble={every: 0}", "self_ensemble: field 'every' must be a positive integer"),
]


@pytest.mark.parametrize(("override", "fragment"), BAD_VALUES, ids=[b[0] for b in BAD_VALUES])
def test_wrong_types_and_out_of_range_values_name_file_and_key_path(override, fragment):
    with pytest.raises(ConfigError) as info:
        load_config(WORDNET, [override])
    message = str(info.value)
    assert message.startswith(f"{WORDNET}: ") and fragment in message, message


@pytest.mark.parametrize(("fields", "fragment"), [
    ({"method": "lora", "peft": {"kind": "adapter"}}, "peft: field 'kind' 'adapter' contradicts method 'lora'"),
    ({"method": "lora", "regularizers": {"mixout": {"p": 0.1}}}, "regularizers.mixout: mixout mixes tuned weights"),
    ({"method": "frozen", "regularizers": {"freelb": {}}}, "regularizers.freelb: adversarial training perturbs"),
    ({"method": "adapter", "regularizers": {"fgm": {}}}, "regularizers.fgm: fgm perturbs the word-embedding weights"),
    ({"method": "frozen", "unfreezing": "gradual"}, "unfreezing applies to full tuning"),
    ({"adversarial": {"name": "pgd"}, "regularizers": {"pgd": {}}}, "adversarial: 'pgd' is configured twice"),
])
def test_combinations_the_method_cannot_run_are_refused_at_load(fields, fragment):
    data = {**load_yaml(WORDNET.read_text(encoding="utf-8")), **fields}
    with pytest.raises(ConfigError, match=fragment.replace("(", r"\(").replace(")", r"\)")):
        finetune_config(data, "run.yaml", CONFIGS)


def test_kind_options_are_typed_per_kind_beside_the_task_fields():
    base = load_yaml(WORDNET.read_text(encoding="utf-8"))
    qa = {"kind": "qa", "train": "qa.jsonl", "doc_stride": 32, "max_query_length": 16}
    config = finetune_config({**base, "tasks": {"squad": qa}}, "run.yaml", CONFIGS)
    assert config.tasks["squad"].options == QAOptions(doc_stride=32, max_query_length=16)
    assert config.tasks["squad"].task_kind.options.doc_stride == 32
    nested = finetune_config({**base, "tasks": {"squad": {"kind": "qa", "train": "qa.jsonl",
                                                          "options": {"doc_stride": 8}}}}, "run.yaml", CONFIGS)
    assert nested.tasks["squad"].options == QAOptions(doc_stride=8)
    with pytest.raises(ConfigError, match=r"run.yaml: tasks.squad: field 'doc_stride' \(the tokens consecutive "
                                          r"windows share\) must be >= 0"):
        finetune_config({**base, "tasks": {"squad": {**qa, "doc_stride": -1}}}, "run.yaml", CONFIGS)
    with pytest.raises(ConfigError, match=r"tasks.squad: unknown field 'doc_strid'; did you mean 'doc_stride'\?"):
        finetune_config({**base, "tasks": {"squad": {**qa, "doc_strid": 1}}}, "run.yaml", CONFIGS)
    tagging = {"kind": "tagging", "train": "ner.conll", "scheme": "BOI"}
    with pytest.raises(ConfigError, match=r"tasks.ner: field 'scheme' must be one of \['BIO', 'BIOES'\], got "
                                          r"'BOI'; did you mean 'BIO'\?"):
        finetune_config({**base, "tasks": {"ner": tagging}}, "run.yaml", CONFIGS)
    tagged = finetune_config({**base, "tasks": {"ner": {**tagging, "scheme": "BIOES"}}}, "run.yaml", CONFIGS)
    assert tagged.tasks["ner"].options == TaggingOptions(scheme="BIOES")
    with pytest.raises(ConfigError, match=r"tasks.ner.head: field 'multi_label' applies to classification heads"):
        finetune_config({**base, "tasks": {"ner": {**tagging, "scheme": "BIO", "head": {"multi_label": True}}}},
                        "run.yaml", CONFIGS)


def test_task_paths_are_relative_to_the_config_file(tmp_path):
    config = load_config(WORDNET)
    task = config.tasks["lexname"]
    assert task.train == str(CONFIGS / "../../data/wordnet/train.jsonl")
    assert task.labels == str(CONFIGS / "../../data/wordnet/labels.txt")
    assert Path(config.model).is_dir()  # `model: minilm` is the registry-installed encoder


def test_older_regularizer_fields_are_aliases_of_named_regularizers():
    base = load_yaml(WORDNET.read_text(encoding="utf-8"))
    old = finetune_config({**base, "adversarial": {"name": "pgd", "steps": 2}, "mixout": 0.1,
                           "self_ensemble": {"every": 5, "last": 3}, "self_distillation": 0.5}, "run.yaml", CONFIGS)
    new = finetune_config({**base, "regularizers": {"pgd": {"steps": 2}, "mixout": {"p": 0.1},
                                                    "self_ensemble": {"every": 5, "last": 3},
                                                    "self_distillation": {"weight": 0.5}}}, "run.yaml", CONFIGS)
    expected = {"pgd": PGDOptions(steps=2), "mixout": MixoutOptions(p=0.1),
                "self_ensemble": AverageOptions(every=5, last=3), "self_distillation": SelfDistillationOptions(0.5)}
    assert old.regularizers == new.regularizers == expected
    assert (old.adversarial, old.mixout, old.self_ensemble, old.self_distillation) == (None, 0.0, None, 0.0)
    assert [r.name for r in old.build_regularizers()] == ["mixout", "pgd", "self_ensemble", "self_distillation"]
    again = copy.deepcopy(old)
    again.validate("run.yaml")  # validating a loaded config changes nothing
    assert again == old
    default = finetune_config({**base, "adversarial": {}}, "run.yaml", CONFIGS)  # the old default method
    assert default.regularizers == {"fgm": FGMOptions()}


def test_the_training_seed_and_evaluation_default_to_the_run():
    base = load_yaml(WORDNET.read_text(encoding="utf-8"))
    config = finetune_config({**base, "seed": 7}, "run.yaml", CONFIGS)
    assert config.train.seed is None and config.train.resolve(7, 0).seed == 7
    assert config.train.eval_every is None and config.train.resolve(7, 12).eval_every == 12
    own = finetune_config({**base, "seed": 7, "train": {**base["train"], "seed": 3, "eval_every": 0}}, "run.yaml",
                          CONFIGS)
    assert own.train.resolve(7, 12).seed == 3 and own.train.resolve(7, 12).eval_every == 0


def test_a_config_built_in_python_gets_the_checks_a_file_gets(workspace):
    task = TaskConfig(train=str(workspace / "cls/train.jsonl"), max_length=16)
    config = FinetuneConfig(model=str(workspace / "enc"), tasks={"sent": task}, mixout=0.1)
    job = Finetuning(config)
    assert [r.name for r in job.regularizers] == ["mixout"] and config.mixout == 0.0
    assert job.model.task_options["sent"] == {"columns": asdict(Columns()), "max_length": 16, "options": {}}
    with pytest.raises(ConfigError, match=r"field 'method' must be one of .*did you mean 'lora'\?"):
        Finetuning(FinetuneConfig(model=str(workspace / "enc"), tasks={"sent": task}, method="lorra"))


def test_models_saved_with_flat_kind_options_still_load():
    old = {"columns": {"label": "score"}, "max_length": 16, "doc_stride": 8, "max_query_length": 4, "scheme": "BIO"}
    head = HeadConfig(labels=["a", "b"], pooling="mean")
    config = TaskConfig.from_saved("classification", head, old)
    assert config.options is None and config.columns.label == "score" and config.head.pooling == "mean"
    qa = TaskConfig.from_saved("qa", HeadConfig(kind="qa"), old)
    assert qa.options == QAOptions(doc_stride=8, max_query_length=4) and qa.max_length == 16
    assert TaskConfig.from_saved("qa", HeadConfig(kind="qa"), qa.saved_options()).options == qa.options
