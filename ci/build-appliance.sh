#!/usr/bin/env bash
# Set up (apt packages, .venv) if needed, then build the default appliance from nothing.
# Until image assembly lands this cooks every recipe in recipes/ for both architectures.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bash "$here/ci/bootstrap.sh"
cd "$here"
exec .venv/bin/appbuild cook recipes/ --arch all -j 2 "$@"
