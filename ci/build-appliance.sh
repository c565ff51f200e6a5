#!/usr/bin/env bash
# Set up (apt packages, .venv) if needed, then build the default appliance from nothing:
# import the upstream packages repo/config.yaml lists (the kernels, ...), cook every
# recipe that changed, resolve group-cernvm and write its VMDK (plus .vmx) for x86_64
# into the image store (images/). Extra arguments go to the build, e.g. --arch all.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bash "$here/ci/bootstrap.sh"
cd "$here"
.venv/bin/appbuild import upstream
exec .venv/bin/appbuild group-cernvm --format vmdk --force "$@"
