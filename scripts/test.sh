#!/usr/bin/env bash
# Run the test suite; pytest's exit code 5 ("no tests collected") counts as a failure here,
# since this project always has tests and collecting none means something is broken.
set -uo pipefail
cd "$(dirname "$0")/.."
.venv/bin/python -m pytest "$@"
rc=$?
if [ $rc -eq 5 ]; then
  echo "test: pytest collected no tests (exit 5): treating as failure" >&2
  exit 1
fi
exit $rc
