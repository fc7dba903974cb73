"""The claims `bertology reproduce` knows, one module per life stage. A new claim is a `Claim` passed to `add`
in a module of this package; every module here is imported (the built-in ones first, in the order --list and
`all` follow: pretraining, fine-tuning, compression, analysis)."""

from __future__ import annotations

import importlib
import pkgutil

from ....utils.registry import Registry
from ..claim import Claim

CLAIMS: Registry[Claim] = Registry("claim")
BUILT_IN = ("pretraining", "finetuning", "compression", "analysis")


def add(claim: Claim) -> Claim:
    CLAIMS.add(claim.name, claim)
    return claim


for _name in [*BUILT_IN, *sorted(m.name for m in pkgutil.iter_modules(__path__) if m.name not in BUILT_IN)]:
    importlib.import_module(f"{__name__}.{_name}")

__all__ = ["CLAIMS", "add"]
