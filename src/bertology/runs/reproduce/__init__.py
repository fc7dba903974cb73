"""`bertology reproduce`: the literature's claims re-run at small scale with several seeds.

Each claim (claims/) measures its arms once per seed on models the workspace builds once and shares; the
report gives means and spreads, the seed paper's own result beside ours, and a one-line verdict: holds, does
not hold, or inconclusive at this scale.
"""

from __future__ import annotations

import json
import platform
from pathlib import Path
from typing import Any

from ...errors import ConfigError
from ...utils.io import atomic_write
from ...utils.table import format_table
from ...utils.typed import suggest
from .claim import Claim, Spread
from .claims import CLAIMS
from .workspace import VARIANTS, Workspace

PRETRAIN_MINUTES = 2.0  # one pretraining variant, one seed, on 2 CPU cores


def cost(claim: Claim, seeds: int) -> float:
    """Rough minutes on 2 CPU cores, counting the pretraining the claim needs as if nothing were cached."""
    return seeds * (claim.minutes + PRETRAIN_MINUTES * len(claim.needs))


def listing(seeds: int = 3) -> list[list[str]]:
    rows = [[c.name, f"~{cost(c, seeds):.0f} min", c.statement] for c in CLAIMS.values()]
    shared = seeds * (sum(c.minutes for c in CLAIMS.values()) + PRETRAIN_MINUTES * len(VARIANTS))
    return [*rows, ["all", f"~{shared:.0f} min", "every claim, each pretrained model built once and shared"]]


def resolve(name: str) -> list[Claim]:
    if name == "all":
        return list(CLAIMS.values())
    if name not in CLAIMS:
        raise ConfigError(f"unknown claim {name!r}{suggest(name, CLAIMS)}; claims are {', '.join(CLAIMS)} (or all)")
    return [CLAIMS[name]]


def run_claim(claim: Claim, ws: Workspace, seeds: int) -> dict[str, Any]:
    """Measure every arm for each seed, then the spreads and the verdict; writes CLAIM/report.md and results.json."""
    per_seed = []
    for seed in range(seeds):
        print(f"\n== {claim.name}: seed {seed} of {seeds}", flush=True)
        per_seed.append({k: float(v) for k, v in claim.measure(ws, seed).items()})
    values = {arm: [row[arm] for row in per_seed] for arm in claim.arms}
    verdict, detail = claim.test(values)
    result = {"claim": claim.name, "statement": claim.statement, "paper": claim.paper, "setup": claim.setup,
              "metric": claim.metric, "seeds": seeds, "per_seed": per_seed,
              "arms": {arm: {"mean": spread.mean, "std": spread.std, "values": list(spread.values)}
                       for arm, spread in ((arm, Spread.of(v)) for arm, v in values.items())},
              "verdict": verdict, "detail": detail}
    folder = ws.root / claim.name
    folder.mkdir(parents=True, exist_ok=True)
    with atomic_write(folder / "results.json") as handle:
        json.dump(result, handle, indent=2)
    with atomic_write(folder / "report.md") as handle:
        handle.write(render(result, level=1))
    print(f"{claim.name}: {verdict} ({detail})", flush=True)
    return result


def render(result: dict[str, Any], level: int = 2) -> str:
    rows = [[arm, f"{a['mean']:.4f}", f"{a['std']:.4f}", ", ".join(f"{v:.4f}" for v in a["values"])]
            for arm, a in result["arms"].items()]
    return "\n".join([
        f"{'#' * level} {result['claim']}: {result['verdict']}", "",
        f"**Claim.** {result['statement']}", "",
        f"**Paper.** {result['paper']}.", "",
        f"**Here.** {result['setup']}; {result['seeds']} seeds.", "",
        format_table(["arm", f"mean ({result['metric']})", "std", "per seed"], rows, markdown=True), "",
        f"**Verdict: {result['verdict']}** ({result['detail']}).", ""])


def run(name: str, out: Path, seeds: int = 3) -> list[dict[str, Any]]:
    claims = resolve(name)
    if seeds < 2:
        raise ConfigError(f"--seeds must be at least 2 (a spread needs two values), got {seeds}")
    ws = Workspace(Path(out))
    results = [run_claim(claim, ws, seeds) for claim in claims]
    summary = [[r["claim"], r["verdict"], r["detail"]] for r in results]
    print("\n" + format_table(["claim", "verdict", "detail"], summary))
    if name == "all" or len(results) > 1:
        with atomic_write(Path(out) / "results.json") as handle:
            json.dump({"seeds": seeds, "claims": results}, handle, indent=2)
        with atomic_write(Path(out) / "report.md") as handle:
            handle.write("\n".join([
                "# bertology reproduce: the literature's claims at small scale", "",
                f"{seeds} seeds per claim; measured on {platform.machine()} with the pretraining variants "
                f"{', '.join(VARIANTS)} shared between claims. Each claim's own folder holds its report and "
                "results.json.", "",
                format_table(["claim", "verdict", "detail"], summary, markdown=True), "",
                *(render(r) for r in results)]))
    return results


__all__ = ["CLAIMS", "listing", "resolve", "run", "run_claim"]
