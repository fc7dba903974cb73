"""`--device` on every command: the CPU works here, a device that is not present is one clear error before
anything is loaded, a misspelt one is refused with a suggestion."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from bertology.assets import minilm_dir
from bertology.cli.main import main
from bertology.device import resolve_device
from bertology.errors import ConfigError
from bertology.inference import SentenceEncoder
from bertology.training import TrainConfig
from bertology.training.distributed import World, device_for

no_cuda = pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")

#: every command with arguments that name nothing on disk: an error about them would mean something was read
COMMANDS = {
    "embed": ["embed", "--model", "no-such-model", "no-such-input.txt"],
    "predict": ["predict", "no-such-model", "no-such-input.jsonl", "-o", "out.jsonl"],
    "evaluate": ["evaluate", "no-such-model", "no-such-data.jsonl"],
    "pretrain": ["pretrain", "no-such-config.yaml"],
    "finetune": ["finetune", "no-such-config.yaml"],
    "distill": ["distill", "no-such-config.yaml"],
}


@no_cuda
def test_auto_is_the_cpu_here():
    assert resolve_device("auto") == torch.device("cpu")
    assert resolve_device("cpu") == torch.device("cpu")
    assert device_for(World(), "auto") == torch.device("cpu")
    with pytest.raises(ConfigError, match="no CUDA device is available"):
        resolve_device("cuda:1")


@no_cuda
@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_cuda_without_cuda_is_one_clear_error_before_loading(command, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(COMMANDS[command] + ["--device", "cuda"]) == 2
    err = capsys.readouterr().err
    assert "'cuda'" in err and "no CUDA device is available" in err and "available: cpu" in err
    assert "Traceback" not in err and "no-such" not in err
    assert err.count("\n") == 1


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_a_misspelt_device_is_refused_with_a_suggestion(command, capsys):
    with pytest.raises(SystemExit) as exc:
        main(COMMANDS[command] + ["--device", "cdua"])
    assert exc.value.code == 2
    assert "did you mean 'cuda'?" in capsys.readouterr().err


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_help_names_the_device_option(command, capsys):
    with pytest.raises(SystemExit):
        main([command, "--help"])
    out = capsys.readouterr().out
    assert "--device" in out and "cuda:N" in out


def test_train_config_device_is_typed_and_checked():
    assert TrainConfig().device == "auto"
    assert TrainConfig(device="cuda:3").device == "cuda:3"
    with pytest.raises(ConfigError, match="did you mean 'cuda'"):
        TrainConfig.from_dict({"device": "cdua"})


def test_embed_on_the_cpu(tmp_path):
    source = tmp_path / "in.txt"
    source.write_text("a man plays a guitar\nsomeone sings\n", encoding="utf-8")
    assert main(["embed", "--model", str(minilm_dir()), str(source), "-o", str(tmp_path / "cpu.npy"),
                 "--device", "cpu"]) == 0
    assert main(["embed", "--model", str(minilm_dir()), str(source), "-o", str(tmp_path / "auto.npy")]) == 0
    cpu, auto = np.load(tmp_path / "cpu.npy"), np.load(tmp_path / "auto.npy")
    assert cpu.shape == (2, 384)
    if not torch.cuda.is_available():
        np.testing.assert_array_equal(cpu, auto)


def test_sentence_encoder_puts_model_and_autocast_on_its_device():
    encoder = SentenceEncoder.from_pretrained(str(minilm_dir()), device="cpu", bf16=True)
    assert encoder.device == torch.device("cpu")
    assert next(encoder.model.parameters()).device == torch.device("cpu")
    assert encoder.encode(["hello world"]).dtype == np.float32
