"""metrics.jsonl: strict JSON lines, rewinding on resume (also after a kill mid-write), and the PNG of the curves."""

from __future__ import annotations

import json
import math
from pathlib import Path

from bertology.training.metrics_log import METRICS_FILE, MetricsLog, plot_curves

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _strict(line: str):
    """Parse as standard JSON: NaN, Infinity and -Infinity are not JSON."""
    def refuse(name: str):
        raise ValueError(f"non-standard JSON constant {name}")
    return json.loads(line, parse_constant=refuse)


def _lines(path: Path) -> list[str]:
    text = path.read_text(encoding="utf-8")
    assert text.endswith("\n")
    return text[:-1].split("\n")


def test_write_appends_json_lines(tmp_path: Path) -> None:
    log = MetricsLog(tmp_path)
    assert log.path == tmp_path / METRICS_FILE
    records = [{"step": 1, "loss": 2.5, "lr": 1e-4}, {"step": 2, "loss": 2.25, "split": "train"},
               {"step": 2, "loss": 3.0, "split": "eval", "accuracy": 0.5}]
    for record in records:
        log.write(record)
    lines = _lines(log.path)
    assert [_strict(line) for line in lines] == records
    # a second log on the same folder (a resumed run) appends
    MetricsLog(tmp_path).write({"step": 3, "loss": 2.0})
    assert [r["step"] for r in log.read()] == [1, 2, 2, 3]
    log.close()


def test_non_finite_values_are_written_as_strings(tmp_path: Path) -> None:
    log = MetricsLog(tmp_path)
    log.write({"step": 4, "loss": float("nan"), "grad_norm": float("inf"), "delta": float("-inf"), "lr": 0.5})
    (line,) = _lines(log.path)
    record = _strict(line)  # still valid JSON
    assert record["step"] == 4 and record["lr"] == 0.5
    for key in ("loss", "grad_norm", "delta"):
        assert isinstance(record[key], str)
    assert math.isnan(float(record["loss"]))
    assert float(record["grad_norm"]) == math.inf
    assert float(record["delta"]) == -math.inf
    assert log.read() == [record]


def test_rewind_drops_later_steps(tmp_path: Path) -> None:
    log = MetricsLog(tmp_path)
    for step in (10, 20, 30, 40):
        log.write({"step": step, "loss": 1.0 / step})
    log.write({"step": 20, "loss": 0.7, "split": "eval"})  # written after step 40 but belongs to step 20
    log.rewind(20)
    assert [(r["step"], r.get("split")) for r in log.read()] == [(10, None), (20, None), (20, "eval")]
    assert all(_strict(line) for line in _lines(log.path))
    log.write({"step": 30, "loss": 0.1})
    assert [r["step"] for r in log.read()] == [10, 20, 20, 30]


def test_rewind_tolerates_a_line_cut_by_a_kill(tmp_path: Path) -> None:
    log = MetricsLog(tmp_path)
    for step in (1, 2, 3):
        log.write({"step": step, "loss": float(step)})
    full = json.dumps({"step": 4, "loss": 4.0, "lr": 0.001})
    with open(log.path, "a", encoding="utf-8") as handle:
        handle.write(full[: len(full) // 2])  # killed mid-write: no closing brace, no newline
    log.rewind(3)
    lines = _lines(log.path)
    assert [_strict(line)["step"] for line in lines] == [1, 2, 3]
    # the resumed run appends cleanly after the rewind
    log.write({"step": 4, "loss": 4.0})
    assert [r["step"] for r in log.read()] == [1, 2, 3, 4]
    assert all(_strict(line) for line in _lines(log.path))


def test_rewind_beyond_the_end_keeps_everything_but_the_cut_line(tmp_path: Path) -> None:
    log = MetricsLog(tmp_path)
    log.write({"step": 1, "loss": 1.0})
    with open(log.path, "a", encoding="utf-8") as handle:
        handle.write('{"step": 2, "lo')
    log.rewind(1000)
    assert log.read() == [{"step": 1, "loss": 1.0}]


def test_rewind_without_a_file_does_nothing(tmp_path: Path) -> None:
    log = MetricsLog(tmp_path)
    log.rewind(5)
    assert not log.path.exists()
    assert log.read() == []


# -------------------------------------------------------------------------------------------- plot
def test_plot_curves_writes_a_png(tmp_path: Path) -> None:
    records = [{"step": s, "loss": 3.0 / s, "lr": 1e-3 * s / 20} for s in range(1, 21)]
    records += [{"step": s, "loss": 2.0 / s, "split": "eval"} for s in (5, 10, 15, 20)]
    records.append({"step": 21, "loss": "nan"})  # a non-finite loss, as read back from metrics.jsonl
    out = tmp_path / "plots" / "curves.png"
    assert plot_curves(records, out) == out
    data = out.read_bytes()
    assert data[:8] == PNG_MAGIC
    assert len(data) > 5000  # an actual figure, not an empty image
    assert [p.name for p in out.parent.iterdir()] == ["curves.png"]  # no temporary file left


def test_plot_curves_from_a_metrics_log(tmp_path: Path) -> None:
    log = MetricsLog(tmp_path)
    for step in range(1, 11):
        log.write({"step": step, "split": "train", "loss": 1.0 / step, "lr": 0.01})
    log.write({"step": 10, "split": "eval", "loss": 0.2})
    out = plot_curves(log.read(), tmp_path / "curves.png")
    assert out is not None and out.read_bytes()[:8] == PNG_MAGIC


def test_plot_curves_needs_train_records(tmp_path: Path) -> None:
    out = tmp_path / "curves.png"
    assert plot_curves([], out) is None
    assert plot_curves([{"step": 5, "loss": 1.0, "split": "eval"}], out) is None
    assert not out.exists()
