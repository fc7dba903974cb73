"""The one device choice every command honours: `auto` (CUDA when present, else the CPU), `cpu`, `cuda`,
`cuda:N`. `check_device_name` checks the spelling (for configs and `--device`); `resolve_device` also checks
that the device is present, so a run fails with one clear line before any model or data is loaded."""

from __future__ import annotations

import re

from .errors import ConfigError

DEVICE_CHOICES = ("auto", "cpu", "cuda", "cuda:N")
_PATTERN = re.compile(r"auto|cpu|cuda(:\d+)?")


def check_device_name(name: str) -> str:
    """`name` if it is auto, cpu, cuda or cuda:N; else a ConfigError with the nearest spelling."""
    from .utils.typed import suggest

    if not isinstance(name, str) or not _PATTERN.fullmatch(name):
        hint = suggest(str(name).split(":")[0], ("auto", "cpu", "cuda"))
        raise ConfigError(f"unknown device {name!r}{hint} (choose {', '.join(DEVICE_CHOICES)})")
    return name


def resolve_device(name: str = "auto"):
    """The torch.device `name` asks for; a ConfigError naming it and what is available when it is not present."""
    import torch

    check_device_name(name)
    if name == "auto":
        return torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")
    device = torch.device(name)
    if device.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise ConfigError(f"device {name!r} was requested but no CUDA device is available "
                              "(available: cpu); use --device cpu or auto")
        if device.index is not None and device.index >= count:
            raise ConfigError(f"device {name!r} was requested but only {count} CUDA device(s) are available "
                              f"(available: cpu, {', '.join(f'cuda:{i}' for i in range(count))})")
    return device


def device_argument(value: str) -> str:
    """argparse `type=` for --device: the spelling is checked when the command line is parsed."""
    import argparse

    try:
        return check_device_name(value)
    except ConfigError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_device_flag(parser, default: str = "auto: CUDA when present, else the CPU") -> None:
    """--device on a command; None when not given (the command's default applies)."""
    parser.add_argument("--device", type=device_argument, default=None, metavar="DEVICE",
                        help=f"auto, cpu, cuda or cuda:N (default: {default}); a device that is not present "
                             "is an error before anything is loaded")
