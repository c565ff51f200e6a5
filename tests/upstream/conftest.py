"""OpenPGP keys made for the session (to sign an rpm-md repository, or to be the wrong key)."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest


@dataclass
class SessionKeys:
    home: Path      # GNUPGHOME holding both secret keys
    uid: str        # the trusted key's user id
    trusted: Path   # its armored public key (what a source's keys: names)
    other: Path     # an armored public key nobody should trust
    other_uid: str


def gpg(home: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["gpg", "--batch", "--homedir", str(home), *args], capture_output=True, check=True)


@pytest.fixture(scope="session")
def test_keys(tmp_path_factory) -> SessionKeys:
    root = tmp_path_factory.mktemp("upstream-keys")
    home = root / "gnupg"
    home.mkdir(mode=0o700)
    uid, other_uid = "upstream index test <index@example.invalid>", "someone else <else@example.invalid>"
    for u in (uid, other_uid):
        gpg(home, "--passphrase", "", "--quick-gen-key", u, "ed25519", "sign", "never")
    trusted, other = root / "trusted.asc", root / "other.asc"
    trusted.write_bytes(gpg(home, "--armor", "--export", uid).stdout)
    other.write_bytes(gpg(home, "--armor", "--export", other_uid).stdout)
    yield SessionKeys(home, uid, trusted, other, other_uid)
    subprocess.run(["gpgconf", "--homedir", str(home), "--kill", "all"], capture_output=True)
