"""Pretraining objectives (MLM, NSP, SOP, order, distance, capitalization, ELECTRA's RTD), chosen by name."""

from . import capitalization, mlm, rtd, sentence  # noqa: F401  (each registers itself)
from .base import OBJECTIVES, Objective, register
from .model import PretrainingModel

__all__ = ["OBJECTIVES", "Objective", "PretrainingModel", "register"]
