"""Detached OpenPGP signatures of a release's ``SHA256SUMS``, made with gpg.

What Debian (``Release.gpg``), Ubuntu (``SHA256SUMS.gpg``) and Fedora (``CHECKSUM``)
download servers do, and what users already know how to check::

    gpg --verify SHA256SUMS.asc SHA256SUMS && sha256sum -c SHA256SUMS

The key is named in ``repo/config.yaml``::

    publish:
      key: releases@example.org        # a key id, fingerprint or user id gpg knows
      gpg_home: /srv/appbuild/gnupg    # optional: GNUPGHOME holding its secret key
      passphrase_file: /etc/appbuild/passphrase   # optional, for a protected key

or by ``APPBUILD_SIGNING_KEY`` / ``APPBUILD_GPG_HOME`` / ``APPBUILD_GPG_PASSPHRASE_FILE``
(which win over the file), or by the command line. gpg runs with ``--batch``; it never
asks for anything.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from appbuilder.core.errors import AppbuildError
from appbuilder.core.settings import Settings


class SigningError(AppbuildError):
    """No usable signing key, or gpg failed."""


@dataclass(frozen=True)
class Signer:
    key: str
    gpg_home: Path | None = None
    passphrase_file: Path | None = None

    def _argv(self, *args: str) -> list[str]:
        gpg = shutil.which("gpg")
        if not gpg:
            raise SigningError("gpg is not installed (apt-get install gpg), or publish with --unsigned")
        argv = [gpg, "--batch", "--no-tty", "--quiet"]
        if self.gpg_home:
            argv += ["--homedir", str(self.gpg_home)]
        return argv + list(args)

    def _run(self, *args: str) -> str:
        proc = subprocess.run(self._argv(*args), capture_output=True, text=True, timeout=120)
        if proc.returncode != 0:
            where = f" (GNUPGHOME {self.gpg_home})" if self.gpg_home else ""
            raise SigningError(f"gpg {' '.join(args[:2])} failed for key {self.key!r}{where}: "
                               f"{proc.stderr.strip() or proc.returncode}")
        return proc.stdout

    def fingerprint(self) -> str:
        """The fingerprint of the signing key; fails unless its secret key is available."""
        out = self._run("--with-colons", "--list-secret-keys", "--", self.key)
        fprs = [line.split(":")[9] for line in out.splitlines() if line.startswith("fpr:")]
        if not fprs:
            raise SigningError(f"gpg has no secret key {self.key!r}")
        return fprs[0]

    def sign(self, path: Path, signature: Path) -> None:
        """Write an ASCII-armored detached signature of *path* to *signature*."""
        extra = []
        if self.passphrase_file:
            extra = ["--pinentry-mode", "loopback", "--passphrase-file", str(self.passphrase_file)]
        self._run(*extra, "--yes", "--local-user", self.key, "--armor", "--detach-sign",
                  "--output", str(signature), "--", str(path))

    def public_key(self) -> bytes:
        """The armored public key (what a download page offers beside the releases)."""
        return self._run("--armor", "--export", "--", self.key).encode()


def signer_from(settings: Settings) -> Signer | None:
    """The signer the settings name (``publish.key``, ``publish.gpg_home``,
    ``publish.passphrase_file``: flag, environment or repo/config.yaml), or None."""
    key = settings.get("publish.key")
    if not key:
        return None
    home, passphrase = settings.get("publish.gpg_home"), settings.get("publish.passphrase_file")
    return Signer(str(key), Path(home).expanduser() if home else None,
                  Path(passphrase).expanduser() if passphrase else None)


def require_signer(settings: Settings, *, unsigned: bool = False) -> Signer | None:
    """The configured signer, checked to hold its secret key; None only when *unsigned* was asked for."""
    if unsigned:
        return None
    signer = signer_from(settings)
    if signer is None:
        raise SigningError("no signing key: set publish.key in repo/config.yaml or APPBUILD_SIGNING_KEY "
                           "(or pass --key), or publish with --unsigned")
    signer.fingerprint()
    return signer
