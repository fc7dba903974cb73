#!/usr/bin/env bash
# ChineseBERT and AMBERT against a plain character BERT of the same size, masking and steps, on People's
# Daily; prints the held-out (fine-grained, character) MLM accuracy of each and the unigram baseline.
# About 30 minutes on 2 CPU cores.
# usage: bash scripts/compare_chinese_models.sh [WORK_DIR] [STEPS]
set -euo pipefail
work="${1:-runs/chinese-compare}"; steps="${2:-1000}"
mkdir -p "$work"
bash "$(dirname "$0")/prepare_peoples_daily.sh" "$work" --record-pinyin
common=(--corpus "$work/corpus" --tokenizer "$work/tokenizer" --set train.max_steps="$steps"
        --set train.eval_every="$steps" --set train.save_every="$steps" --set train.progress=false)
bertology pretrain chinesebert --run-dir "$work/chinesebert" "${common[@]}"
# the same recipe with the plain embedding (character + position + segment)
bertology pretrain chinesebert --run-dir "$work/character" --set model.family=bert "${common[@]}"
# AMBERT: the same data and masking, characters and jieba words through one shared encoder
bertology pretrain ambert --run-dir "$work/ambert" "${common[@]}"
python - "$work" <<'PY'
import json, re, sys
from pathlib import Path
work = Path(sys.argv[1])
print("| model | parameters | held-out MLM accuracy | unigram baseline |")
print("|---|---:|---:|---:|")
for name in ("character", "chinesebert", "ambert"):
    ev = json.loads((work / name / "eval.json").read_text())
    report = (work / name / "report.md").read_text()
    params = re.search(r"([\d,]+) parameters", report).group(1)
    print(f"| {name} | {params} | {ev['eval/mlm_acc']:.4f} | {ev['unigram_baseline_mlm_acc']:.4f} |")
PY
