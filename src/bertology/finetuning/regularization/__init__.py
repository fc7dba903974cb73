"""Fine-tuning regularizers by name: adversarial training (fgm, pgd, freelb, smart), mixout, self_ensemble and
self_distillation. `REGULARIZERS` maps a config's names to them; a new one is one module (see `base.py`)."""

from .adversarial import adversarial_methods, build_adversarial, check_adversarial
from .agreement import Agreement, AgreementOptions, agreement_gap
from .averaging import SelfDistillationOptions, SelfEnsemble, SelfTeacher
from .base import REGULARIZERS, Regularizer, Stage, build_regularizer
from .mixout import Mixout, MixoutOptions

__all__ = ["REGULARIZERS", "Agreement", "AgreementOptions", "Mixout", "MixoutOptions", "Regularizer", "SelfDistillationOptions", "SelfEnsemble",
           "SelfTeacher", "Stage", "adversarial_methods", "build_adversarial", "build_regularizer",
           "agreement_gap", "check_adversarial"]
