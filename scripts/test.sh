#!/usr/bin/env bash
# Run the test suite; pytest's exit code 5 ("no tests collected") counts as a failure here,
# since this project always has tests and collecting none means something is broken.
set -uo pipefail
cd "$(dirname "$0")/.."
# The review page's test drives a real headless browser (Debian's chromium package).
if ! command -v chromium >/dev/null 2>&1; then
  echo "test: installing chromium (apt-get) for the review page's browser test"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends chromium >/dev/null
fi
.venv/bin/python -m pytest --durations=25 "$@"
rc=$?
if [ $rc -eq 5 ]; then
  echo "test: pytest collected no tests (exit 5): treating as failure" >&2
  exit 1
fi
exit $rc
