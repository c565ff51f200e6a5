#!/usr/bin/env bash
# Set up everything appbuild needs on a fresh Debian 12 machine:
#   - the Debian packages it drives (sandbox, qemu, libguestfs, rpm, ...)
#   - a virtualenv in .venv made with /usr/bin/python3 --system-site-packages, so the
#     Debian-only bindings (python3-guestfs, python3-rpm) are importable, with appbuild
#     installed into it in editable mode.
# Safe to run again: it installs only what is missing.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$here"

APT_PACKAGES=(
    # a host compiler for the tests' own fixtures (ELF files, RPMs); cooks never use it:
    # they run in build roots made from groups/group-toolchain.py
    build-essential gcc-multilib binutils make patch file zlib1g-dev
    # sandbox and sources: bubblewrap (+ libseccomp's binding for its filter), apt's
    # source packages, archives
    bubblewrap python3-seccomp dpkg-dev xz-utils bzip2 zstd ca-certificates
    # Python: the venv module and the Debian-only bindings
    python3-venv python3-guestfs python3-rpm
    # capsules: rpm, rpmbuild, rpmsign and rpm-md repositories; gpg makes test signing keys
    rpm createrepo-c cpio gpg
    # images: partitioning, filesystems, bootloader, conversion, boot tests
    fdisk e2fsprogs kmod syslinux syslinux-common extlinux mtools dosfstools
    qemu-utils qemu-system-x86 libguestfs-tools linux-image-amd64 xorriso
    # the from-scratch rebuild test builds "on another day" (libfaketime moves the clock)
    faketime
    # the login tests: ssh and ssh-keygen (keys, logging in to the guest), openssl (password hashes)
    openssh-client openssl
    # graph pictures
    graphviz
    # the download page is tested in a real headless browser (selenium drives chromedriver)
    chromium chromium-driver
    # the download server config in ci/nginx is tested with a real nginx
    nginx-light
    # the file system benchmark's reference download (bench/fs_read.py)
    curl
)

as_root() {
    if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi
}

missing=()
for p in "${APT_PACKAGES[@]}"; do
    status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
    [ "$status" = "install ok installed" ] || missing+=("$p")
done

if [ ${#missing[@]} -gt 0 ]; then
    echo "bootstrap: installing ${#missing[@]} Debian packages: ${missing[*]}"
    # The security suite's i386 index is often caught mid-sync here ("File has unexpected
    # size ... Mirror sync in progress?", exit 100): that is a warning, not a failure, as
    # long as the main suite's indexes are there.
    if ! as_root apt-get update -q; then
        echo "bootstrap: warning: 'apt-get update' reported errors (see above); continuing with the indexes it did fetch" >&2
    fi
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

if [ ! -x .venv/bin/python ] || ! .venv/bin/python -c 'import guestfs, rpm, seccomp' 2>/dev/null; then
    echo "bootstrap: creating .venv (system site packages, for guestfs and rpm)"
    rm -rf .venv
    /usr/bin/python3 -m venv --system-site-packages .venv
fi

stamp=.venv/.appbuild-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
    echo "bootstrap: installing appbuild and its Python dependencies into .venv"
    .venv/bin/pip install -q --disable-pip-version-check -e '.[test]'
    touch "$stamp"
fi
# appbuild's own bytecode, compiled once here: an editable install is not compiled by pip,
# and where PYTHONDONTWRITEBYTECODE is set every command would compile its modules again
# (a tenth of a second or more each time); what is up to date is skipped, a source edited
# later is compiled in memory until the next bootstrap
.venv/bin/python -m compileall -q -j 0 appbuilder >/dev/null
echo "bootstrap: ready ($(.venv/bin/appbuild --version))"
