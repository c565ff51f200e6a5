#!/usr/bin/env bash
# Set up (apt packages, .venv) if needed, then run the whole test suite.
# Extra arguments go to pytest, e.g. `bash ci/test.sh -k cook -x`.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bash "$here/ci/bootstrap.sh"
cd "$here"
exec .venv/bin/python -m pytest "$@"
