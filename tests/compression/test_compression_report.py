"""The compression report: counts, sizes, the table's arithmetic, the files it writes, and the timer."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from bertology import BertForMaskedLM, BertModel
from bertology.compression.report import (
    PLOT_FILE,
    REPORT_FILE,
    RESULTS_FILE,
    CompressionReport,
    VariantMeasure,
    count_parameters,
    folder_size,
    measure_speed,
    measure_variant,
    module_size_on_disk,
)
from bertology.errors import ConfigError

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def table_rows(markdown: str) -> list[list[str]]:
    """The body rows of the one Markdown table in `markdown`, as stripped cells."""
    lines = [line for line in markdown.splitlines() if line.startswith("|")]
    return [[cell.strip() for cell in line.strip("|").split("|")] for line in lines[2:]]


@pytest.fixture
def report() -> CompressionReport:
    """Round numbers, so that the expected speed-ups and shares are exact."""
    r = CompressionReport(reference="teacher", environment={"torch": "x", "threads": 2, "machine": "m"})
    r.add(VariantMeasure("teacher", 110_000_000, 440_000_000, latency_ms=50.0, tokens_per_s=1000.0,
                         metric_name="accuracy", metric=0.80, threads=2))
    r.add(VariantMeasure("student", 14_500_000, 58_000_000, latency_ms=6.0, tokens_per_s=9400.0,
                         metric_name="accuracy", metric=0.78, threads=2))
    r.add(VariantMeasure("pruned", 55_000_000, 220_000_000, metric_name="accuracy", metric=0.60))
    return r


# ------------------------------------------------------------------------------------------ counting
def test_tied_weights_are_counted_once() -> None:
    emb = nn.Embedding(100, 16)
    decoder = nn.Linear(16, 100)
    decoder.weight = emb.weight  # the same Parameter
    assert count_parameters(nn.ModuleList([emb, decoder])) == 100 * 16 + 100

    other = nn.Linear(16, 100)
    other.weight = nn.Parameter(emb.weight.data)  # another Parameter object over the same tensor
    assert count_parameters(nn.ModuleList([emb, other])) == 100 * 16 + 100


def test_bert_mlm_counts_embeddings_and_its_tied_decoder_once(tiny_config) -> None:
    model = BertForMaskedLM(tiny_config)
    count = count_parameters(model)
    assert count == model.num_parameters()
    word = model.bert.embeddings.word.weight.numel()
    assert count >= word + count_parameters(model.bert.encoder)
    naive = sum(t.numel() for t in model.state_dict().values() if t.is_floating_point())
    assert naive - count >= word  # the decoder's copy of the table is not counted again


def test_nonzero_only_counts_what_pruning_left() -> None:
    layer = nn.Linear(4, 4, bias=False)
    with torch.no_grad():
        layer.weight.zero_()
        layer.weight[0, :3] = 1.0
    assert count_parameters(layer) == 16
    assert count_parameters(layer, nonzero_only=True) == 3


# --------------------------------------------------------------------------------------------- sizes
def test_folder_size_is_the_sum_of_its_files(tmp_path: Path, tiny_config) -> None:
    model = BertModel(tiny_config)
    model.save_pretrained(tmp_path)
    (tmp_path / "tokenizer").mkdir()
    (tmp_path / "tokenizer" / "vocab.txt").write_text("[PAD]\n[UNK]\n", encoding="utf-8")
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert {p.name for p in files} >= {"config.json", "model.safetensors", "vocab.txt"}
    assert folder_size(tmp_path) == sum(p.stat().st_size for p in files)


def test_folder_size_refuses_a_file(tmp_path: Path) -> None:
    path = tmp_path / "model.safetensors"
    path.write_bytes(b"x")
    with pytest.raises(ConfigError, match="not a folder"):
        folder_size(path)


def test_module_size_is_its_safetensors_file(tmp_path: Path, tiny_config) -> None:
    from safetensors.torch import save_file

    model = BertModel(tiny_config)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(tmp_path / "w.safetensors"),
              metadata={"format": "pt"})
    assert module_size_on_disk(model) == (tmp_path / "w.safetensors").stat().st_size


def test_module_size_stores_a_tied_table_once(tiny_config) -> None:
    model = BertForMaskedLM(tiny_config)
    table_bytes = model.bert.embeddings.word.weight.numel() * 4
    untied = BertForMaskedLM(tiny_config)
    untied.mlm_head.decoder.weight = nn.Parameter(untied.bert.embeddings.word.weight.detach().clone())
    assert module_size_on_disk(untied) - module_size_on_disk(model) >= table_bytes


# --------------------------------------------------------------------------------------------- table
def test_markdown_table_has_one_row_per_variant_with_the_right_arithmetic(report: CompressionReport) -> None:
    rows = table_rows(report.render_markdown())
    assert [r[0] for r in rows] == ["teacher (reference)", "student", "pruned"]
    teacher, student, pruned = rows
    assert teacher[1:] == ["110.00", "440.0", "50.00", "1,000", "1.00x", "0.8", "100.0%"]
    assert student[1:] == ["14.50", "58.0", "6.00", "9,400", "9.40x", "0.78", "97.5%"]
    assert pruned[1:] == ["55.00", "220.0", "-", "-", "-", "0.6", "75.0%"]
    assert report.speedup(report.variant("student")) == pytest.approx(9.4)
    assert report.metric_share(report.variant("student")) == pytest.approx(0.975)


def test_speed_and_metric_columns_are_left_out_when_nobody_has_them() -> None:
    r = CompressionReport(reference="a")
    r.add(VariantMeasure("a", 1_000_000, 4_000_000))
    r.add(VariantMeasure("b", 500_000, 2_000_000))
    text = r.render_terminal()
    assert "latency" not in text and "tokens/s" not in text and "share" not in text
    assert len(text.splitlines()) == 2 + 2


def test_share_needs_the_same_metric() -> None:
    r = CompressionReport(reference="a")
    r.add(VariantMeasure("a", 1, metric_name="f1", metric=0.9))
    r.add(VariantMeasure("b", 1, metric_name="accuracy", metric=0.8))
    assert r.metric_share(r.variant("b")) is None


def test_reference_must_be_a_variant_and_names_unique(report: CompressionReport, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="already"):
        report.add(VariantMeasure("student", 1))
    report.reference = "original"
    with pytest.raises(ConfigError, match="no variant 'original'"):
        report.write(tmp_path)
    assert not (tmp_path / REPORT_FILE).exists()


# --------------------------------------------------------------------------------------------- files
def test_results_json_round_trips(report: CompressionReport, tmp_path: Path) -> None:
    report.write(tmp_path)
    data = json.loads((tmp_path / RESULTS_FILE).read_text(encoding="utf-8"))
    assert [v["name"] for v in data["variants"]] == ["teacher", "student", "pruned"]
    assert data["variants"][1]["speedup"] == pytest.approx(9.4)
    assert data["variants"][2]["latency_ms"] is None
    assert CompressionReport.read(tmp_path) == report
    assert CompressionReport.read(tmp_path / RESULTS_FILE) == report


def test_write_makes_a_valid_png(report: CompressionReport, tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    written = report.write(tmp_path / "run")
    assert set(written) == {"plot", "results", "report"}
    assert (tmp_path / "run" / PLOT_FILE).read_bytes()[:8] == PNG_MAGIC
    assert f"]({PLOT_FILE})" in (tmp_path / "run" / REPORT_FILE).read_text(encoding="utf-8")
    assert not [p for p in (tmp_path / "run").iterdir() if p.name.startswith(".")]  # no temporary files left


def test_missing_matplotlib_is_a_line_in_the_report(report: CompressionReport, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # makes `import matplotlib` raise ImportError
    written = report.write(tmp_path)
    assert "plot" not in written and not (tmp_path / PLOT_FILE).exists()
    text = (tmp_path / REPORT_FILE).read_text(encoding="utf-8")
    assert "matplotlib is not installed" in text
    assert len(table_rows(text)) == 3


# -------------------------------------------------------------------------------------------- timing
def test_measure_speed_times_a_tiny_model(tiny_config) -> None:
    model = BertModel(tiny_config).train()
    speed = measure_speed(model, batch=2, seq=16, vocab_size=tiny_config.vocab_size, repeats=2, warmup=1)
    assert speed.latency_ms > 0 and speed.tokens_per_s > 0
    assert speed.tokens_per_s == pytest.approx(2 * 16 / (speed.latency_ms / 1e3))
    assert speed.threads == torch.get_num_threads()
    assert model.training  # its mode is given back


def test_measure_speed_times_any_callable() -> None:
    seen: list[torch.Size] = []
    speed = measure_speed(lambda ids: seen.append(ids.shape), batch=3, seq=5, vocab_size=10, repeats=2, warmup=1)
    assert seen == [torch.Size([3, 5])] * 3
    assert speed.repeats == 2 and speed.tokens_per_s > 0
    with pytest.raises(ValueError, match="repeats"):
        measure_speed(lambda ids: None, repeats=0)


def test_measure_variant_fills_every_column(tiny_config) -> None:
    model = BertModel(tiny_config)
    v = measure_variant("tiny", model, vocab_size=tiny_config.vocab_size, seq=16, throughput_batch=2,
                        repeats=2, warmup=0, metric_name="accuracy", metric=0.5)
    assert v.parameters == count_parameters(model)
    assert v.size_bytes == module_size_on_disk(model)
    assert v.latency_ms > 0 and v.tokens_per_s > 0 and v.threads == torch.get_num_threads()
    untimed = measure_variant("tiny", model, vocab_size=tiny_config.vocab_size, time_speed=False)
    assert untimed.latency_ms is None and untimed.tokens_per_s is None
