"""A malicious pickle (its `__reduce__` would create a marker file) as the weights of an otherwise valid model
folder, and as the optimizer state of a training checkpoint, goes through every command and API that takes
one: each refuses with one clear line (exit 2) naming the file, and the payload never runs."""

from __future__ import annotations

import hashlib
import json
import pickle
import shutil
from itertools import islice
from pathlib import Path

import pytest
import torch
import yaml

import bertology
from bertology import Tokenizer
from bertology.assets import peoples_daily_path, peoples_daily_sentences
from bertology.cli.main import main
from bertology.data import prepare_corpus
from bertology.errors import BertologyError

TOY_QUICK = {"batch_size": 8, "learning_rate": 1e-3, "progress": False, "plot": False, "log_every": 2}


class Payload:
    """Unpickling this runs `exec`, which creates the marker file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return exec, (f"open({str(self.marker)!r}, 'w').close()",)


def poison(path: Path, marker: Path, torch_zip: bool = True) -> Path:
    """Write a pickle that creates `marker` when loaded: torch.save's zip format, or a bare pickle."""
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {"embeddings.word_embeddings.weight": Payload(marker)}
    if torch_zip:
        torch.save(payload, path)
    else:
        with open(path, "wb") as handle:
            pickle.dump(payload, handle)
    return path


@pytest.fixture(scope="module")
def ws(tmp_path_factory, fine_tune_toy) -> Path:
    """The toy workspace, a fine-tuned classifier in run/, and poisoned copies of both model folders."""
    root = fine_tune_toy(tmp_path_factory.mktemp("evil"), "run", 1)
    marker = root / "PWNED"
    shutil.copytree(root / "enc", root / "enc_bad")
    (root / "enc_bad" / "model.safetensors").unlink()
    poison(root / "enc_bad" / "pytorch_model.bin", marker)
    shutil.copytree(root / "run" / "model", root / "ft_bad")
    (root / "ft_bad" / "encoder" / "model.safetensors").unlink()
    poison(root / "ft_bad" / "encoder" / "pytorch_model.bin", marker)
    (root / "texts.txt").write_text("the cat sat on the mat\na dog is red\n", encoding="utf-8")
    return root


@pytest.fixture(autouse=True)
def _no_marker(request):
    yield
    if "ws" in request.fixturenames:
        ws = request.getfixturevalue("ws")
        assert not (ws / "PWNED").exists(), "the pickle payload ran"


def test_the_payload_is_live(tmp_path):
    # the same files do run code when loaded unsafely, so the checks below can fail
    for torch_zip in (True, False):
        marker = tmp_path / f"live-{torch_zip}"
        path = poison(tmp_path / f"evil-{torch_zip}.bin", marker, torch_zip)
        if torch_zip:
            torch.load(path, weights_only=False)
        else:
            with open(path, "rb") as handle:
                pickle.load(handle)  # noqa: S301 - on purpose: proves the payload works
        assert marker.exists()


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")  # torch's note on the bare pickle: expected
def test_bertology_load_refuses(ws, tmp_path):
    for torch_zip in (True, False):
        folder = shutil.copytree(ws / "enc_bad", tmp_path / f"enc-{torch_zip}")
        poison(folder / "pytorch_model.bin", ws / "PWNED", torch_zip)
        with pytest.raises(BertologyError, match="pytorch_model.bin.*(weights-only|refused)"):
            bertology.load(folder)
    with pytest.raises(BertologyError, match="encoder/pytorch_model.bin"):
        bertology.load(ws / "ft_bad" / "encoder")


def _commands(ws: Path, out: Path) -> dict[str, list[str]]:
    enc, ft = str(ws / "enc_bad"), str(ws / "ft_bad")
    test = str(ws / "cls" / "test.jsonl")
    finetune = out / "finetune.yaml"
    finetune.write_text(yaml.safe_dump({
        "model": enc, "run_dir": str(out / "ft-run"),
        "tasks": {"animal": {"kind": "classification", "train": str(ws / "cls" / "train.jsonl"), "max_length": 16}},
        "train": {"epochs": 1, "batch_size": 8, "progress": False, "plot": False}}), encoding="utf-8")
    distill = out / "distill.yaml"
    distill.write_text(yaml.safe_dump({
        "method": "tinybert", "stage": "task", "teacher": ft,
        "student": {"init": "random", "size": {"num_hidden_layers": 1, "hidden_size": 16, "num_attention_heads": 2,
                                                "intermediate_size": 32}},
        "task": {"train": str(ws / "cls" / "train.jsonl"), "max_length": 16},
        "run_dir": str(out / "distill-run"), "train": {"progress": False, "plot": False}}), encoding="utf-8")
    tags = out / "tags.jsonl"
    tags.write_text(json.dumps({"words": ["the", "cat"], "tags": ["DET", "NOUN"]}) + "\n", encoding="utf-8")
    return {
        "info": ["info", enc],
        "embed": ["embed", "--model", enc, str(ws / "texts.txt"), "-o", str(out / "e.npy")],
        "predict": ["predict", ft, test, "-o", str(out / "p.jsonl")],
        "evaluate": ["evaluate", ft, test],
        "finetune": ["finetune", str(finetune)],
        "distill": ["distill", str(distill)],
        "quantize": ["quantize", ft, str(out / "q")],
        "prune": ["prune", ft, str(out / "pr"), "--data", str(ws / "cls" / "dev.jsonl"), "--heads", "1"],
        "export": ["export", ft, str(out / "x")],
        "export-encoder": ["export", enc, str(out / "xe")],
        "probe": ["probe", enc, str(tags), str(out / "pb"), "--column", "tags"],
        "attention": ["attention", enc, str(ws / "texts.txt"), str(out / "at")],
        "cloze": ["cloze", enc, "--text", "the [MASK] sat ."],
        "robustness": ["robustness", ft, str(ws / "texts.txt"), "--out", str(out / "rb")],
        # refused while loading, before the port is bound (port 9 would be refused anyway: nothing listens)
        "serve": ["serve", ft, "--port", "9"],
        "serve-encoder": ["serve", enc, "--port", "9"],
    }


COMMANDS = ["info", "embed", "predict", "evaluate", "finetune", "distill", "quantize", "prune", "export",
            "export-encoder", "probe", "attention", "cloze", "robustness", "serve", "serve-encoder"]


@pytest.mark.parametrize("name", COMMANDS)
def test_every_command_refuses_a_poisoned_model_folder(ws, tmp_path, capsys, name):
    args = _commands(ws, tmp_path)[name]
    assert main(args) == 2
    first = capsys.readouterr().err.strip().splitlines()[0]
    assert first.startswith(f"bertology {args[0]}: error: ") and "pytorch_model.bin" in first, first
    assert "weights-only" in first and "UnpicklingError" in first, first


def test_the_refusal_is_one_line(ws, capsys):
    assert main(["info", str(ws / "enc_bad")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err


def _finetune_resume(ws: Path, run: Path, tmp_path: Path) -> list[str]:
    config = {"model": str(ws / "enc"), "run_dir": str(run),
              "tasks": {"animal": {"kind": "classification", "train": str(ws / "cls/train.jsonl"),
                                   "test": str(ws / "cls/test.jsonl"), "max_length": 16}},
              "train": {**TOY_QUICK, "epochs": 2}}
    path = tmp_path / "resume.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return ["finetune", str(path), "--resume", "--force"]


def test_a_poisoned_optimizer_state_fails_its_checksum_and_is_set_aside(ws, tmp_path, caplog):
    run = shutil.copytree(ws / "run", tmp_path / "run")
    (checkpoint,) = sorted((run / "checkpoints").iterdir())
    poison(checkpoint / "optimizer.pt", ws / "PWNED")
    assert main(_finetune_resume(ws, run, tmp_path)) == 0  # no intact checkpoint left: it starts over
    assert any("is damaged (optimizer.pt" in r.getMessage() for r in caplog.records)
    assert (run / "checkpoints" / "damaged" / checkpoint.name / "optimizer.pt").is_file()


def test_a_resealed_poisoned_optimizer_state_is_refused_in_one_line(ws, tmp_path, capsys):
    run = shutil.copytree(ws / "run", tmp_path / "run")
    (checkpoint,) = sorted((run / "checkpoints").iterdir())
    poison(checkpoint / "optimizer.pt", ws / "PWNED")
    _reseal(checkpoint, "optimizer.pt")
    assert main(_finetune_resume(ws, run, tmp_path)) == 2
    err = capsys.readouterr().err.strip()
    assert "optimizer.pt" in err and len(err.splitlines()) == 1, err


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory) -> Path:
    """A two-step pretraining run with a checkpoint at step 2, on a tiny People's Daily corpus."""
    root = tmp_path_factory.mktemp("pre")
    lines = ["".join(words) for words in islice(peoples_daily_sentences(), 100)]
    tok = Tokenizer.train(iter(lines), vocab_size=2000, limit_alphabet=2000, min_frequency=1)
    tok.save_pretrained(root / "tok")
    with open(peoples_daily_path(), encoding="utf-8") as handle:
        (root / "pd.txt").write_text("".join(islice(handle, 100)), encoding="utf-8")
    prepare_corpus([root / "pd.txt"], root / "corpus", tok, input_format="pku", chinese_words=None, workers=1,
                   progress=False)
    assert main(_pretrain_args(root, 2)) == 0
    return root


def _pretrain_args(root: Path, steps: int) -> list[str]:
    overrides = [f"corpus={root / 'corpus'}", f"tokenizer={root / 'tok'}", f"run_dir={root / 'run'}",
                 "model.preset=tiny", "model.hidden_size=32", "model.num_attention_heads=2",
                 "model.intermediate_size=64", "data.max_length=32", f"train.max_steps={steps}",
                 "train.batch_size=4", "train.save_every=2", "train.schedule=constant", "train.progress=false",
                 "train.bf16=false"]
    return ["pretrain", "bert", "--device", "cpu", *[x for o in overrides for x in ("--set", o)]]


def _reseal(checkpoint: Path, name: str) -> None:
    """Rewrite the manifest's record of `name` to match the poisoned file, as an attacker would."""
    manifest = json.loads((checkpoint / "manifest.json").read_text(encoding="utf-8"))
    data = (checkpoint / name).read_bytes()
    manifest["files"][name] = {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    (checkpoint / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")


def test_pretrain_resume_never_runs_a_poisoned_optimizer_state(pretrained):
    marker = pretrained / "PWNED"
    checkpoints = sorted(p for p in (pretrained / "run" / "checkpoints").iterdir() if p.name.startswith("step-"))
    assert checkpoints
    poison(checkpoints[-1] / "optimizer.pt", marker)
    _reseal(checkpoints[-1], "optimizer.pt")
    # the manifest vouches for the file, so torch.load(weights_only=True) is what must refuse it
    assert main([*_pretrain_args(pretrained, 4), "--resume"]) == 2
    assert not marker.exists()
