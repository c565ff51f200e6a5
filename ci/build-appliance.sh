#!/usr/bin/env bash
# Set up (apt packages, .venv) if needed, then build the default appliance from nothing
# with the mission's own command: `appbuild group-cernvm --format vmdk` imports the
# upstream packages repo/config.yaml lists that the repository lacks (the toolchain,
# the kernels, ...), cooks every recipe that changed, resolves group-cernvm and writes
# its VMDK (plus .vmx) for x86_64 into the image store (images/). Extra arguments go to
# the build, e.g. --arch all.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bash "$here/ci/bootstrap.sh"
cd "$here"
exec .venv/bin/appbuild group-cernvm --format vmdk --force "$@"
