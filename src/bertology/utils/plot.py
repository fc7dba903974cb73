"""PNG plots: matplotlib is optional (`bertology[plot]`), draws to files only, and every figure is written
atomically and closed (a long run that plots each evaluation must not keep figures alive)."""

from __future__ import annotations

import logging
import os
from typing import Any

from .io import atomic_path

logger = logging.getLogger(__name__)

INSTALL = "pip install 'bertology[plot]'"


def pyplot(what: str = "plot") -> Any | None:
    """`matplotlib.pyplot` on the file-only Agg back end, or None (with a warning naming `what` is skipped)
    when matplotlib is not installed."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        logger.warning("matplotlib is not installed (%s); no %s written", INSTALL, what)
        return None
    return plt


def save_png(figure: Any, path: str | os.PathLike, dpi: int = 110) -> str:
    """Write `figure` to `path` as PNG (atomically) and close it; returns the path."""
    import matplotlib.pyplot as plt

    try:
        with atomic_path(path) as tmp:
            figure.savefig(tmp, format="png", dpi=dpi)
    finally:
        plt.close(figure)
    return str(path)


__all__ = ["INSTALL", "pyplot", "save_png"]
