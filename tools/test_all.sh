#!/usr/bin/env bash
# The whole test suite, in the order of the foundation issue. Run through `make test`, which provides .venv.
set -euo pipefail
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 MPLBACKEND=Agg PYTHONHASHSEED=0
start=$SECONDS
stage() { echo; echo "== $1 [$((SECONDS - start)) s]"; }

stage "1/4 notebooks and library in sync: nbdev_export and nbdev_clean must change nothing"
snap=$(mktemp -d)
# 90_demo (stage 2) runs the tiny demo into this folder, and tests/test_demo_cli.py (stage 3) continues that run from the command line
export ETP_SHARED_TINY_DEMO=$(mktemp -d)
trap 'rm -rf "$snap" "$ETP_SHARED_TINY_DEMO"' EXIT
cp -r nbs etp_nbdev "$snap/"
nbdev_export
nbdev_clean
if ! diff -rq -x __pycache__ -x '*.yml' "$snap/nbs" nbs >/dev/null || ! diff -rq -x __pycache__ "$snap/etp_nbdev" etp_nbdev >/dev/null; then
  echo "FAIL: nbdev_export/nbdev_clean changed these files (edit the notebooks, run 'make export', commit both):"
  diff -rq -x __pycache__ -x '*.yml' "$snap/nbs" nbs || true
  diff -rq -x __pycache__ "$snap/etp_nbdev" etp_nbdev || true
  exit 1
fi
echo "in sync"

stage "2/4 nbdev_test: every notebook, top to bottom (flags skipped by default: slow cuda notest)"
nbdev_test --n_workers 2 --timing

stage "3/4 pytest tests/ (all but the docs site), two workers, each test file in one of them"
python -m pytest tests -m "not site" -q -p no:cacheprovider -n 2 --dist loadfile --durations=15

stage "4/4 documentation site: nbdev_proc_nbs + smalldocs, every notebook a page, every internal link and image resolves, pages in Chromium"
bash tools/ensure_chromium.sh
rm -rf _screenshots
python -m pytest tests -m site -q -p no:cacheprovider -rs
if compgen -G '_screenshots/*.png' >/dev/null; then echo "screenshots of the site in Chromium: $PWD/_screenshots/"; fi
echo; echo "all stages passed in $((SECONDS - start)) s"
