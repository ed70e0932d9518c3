#!/usr/bin/env bash
# Make sure headless Chromium is there for the browser test of the docs site (tests/test_browser.py).
# Installs Debian's chromium with apt-get when it is missing and we are root with apt; otherwise says why not and
# exits 0: the browser test then skips with its reason, and the rest of the suite is unaffected.
set -uo pipefail
for b in chromium chromium-browser google-chrome google-chrome-stable; do
  if command -v "$b" >/dev/null; then echo "browser: $(command -v "$b")"; exit 0; fi
done
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
  echo "note: no Chromium, and not root with apt-get to install it: the browser test will skip (apt-get install chromium)"
  exit 0
fi
echo "installing Chromium with apt-get (once per machine)..."
export DEBIAN_FRONTEND=noninteractive
install() { timeout 600 apt-get install -y -qq --no-install-recommends chromium >/tmp/ensure_chromium.log 2>&1; }
# the package lists of a fresh container are often empty or stale: update them when the first try fails
if install || { timeout 300 apt-get update -qq >>/tmp/ensure_chromium.log 2>&1 && install; }; then
  echo "browser: $(command -v chromium)"
else
  echo "note: apt-get could not install chromium (see /tmp/ensure_chromium.log): the browser test will skip"
  tail -5 /tmp/ensure_chromium.log
fi
exit 0
