"""Pretraining objectives (MLM, NSP, SOP, order, distance, capitalization, ELECTRA's RTD), chosen by name.

Importing the package registers every objective, and AMBERT's family-specific pretraining.
"""

from . import ambert, capitalization, mlm, rtd, sentence  # noqa: F401  (each registers itself)
from .base import OBJECTIVES, Objective, objective_classes, objective_options, register
from .model import PretrainingModel
from .rtd import RtdOptions

__all__ = ["OBJECTIVES", "Objective", "PretrainingModel", "RtdOptions", "objective_classes", "objective_options",
           "register"]
