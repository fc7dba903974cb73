"""Fine-tuning regularizers by name: adversarial training (fgm, pgd, freelb, smart), mixout, self_ensemble,
self_distillation, magnitude_pruning and qat. `REGULARIZERS` maps a config's names to them; a new one is one module (see `base.py`)."""

# registers qat (Q8BERT's quantization-aware training), which lives with the rest of quantization
from ...compression.quantization import qat as _qat  # noqa: F401
from . import magnitude  # noqa: F401  (registers magnitude_pruning)
from .adversarial import adversarial_methods, build_adversarial, check_adversarial
from .agreement import Agreement, AgreementOptions, agreement_gap
from .averaging import SelfDistillationOptions, SelfEnsemble, SelfTeacher
from .base import REGULARIZERS, Regularizer, Stage, build_regularizer
from .mixout import Mixout, MixoutOptions

__all__ = ["REGULARIZERS", "Agreement", "AgreementOptions", "Mixout", "MixoutOptions", "Regularizer", "SelfDistillationOptions", "SelfEnsemble",
           "SelfTeacher", "Stage", "adversarial_methods", "build_adversarial", "build_regularizer",
           "agreement_gap", "check_adversarial"]
