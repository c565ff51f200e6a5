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
asks for anything. The same key signs the DSSE envelope of each build's provenance
(:meth:`Signer.sign_bytes`, see ``dsse.py``).

Checking (``appbuild verify RELEASE``): :func:`open_keyring` takes the keys a downloader
trusts (``--keyring``: a GNUPGHOME directory or a public key file) into a private
temporary GNUPGHOME, and :meth:`Keyring.verify` checks a detached signature with them.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

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

    def sign_bytes(self, data: bytes) -> bytes:
        """A binary detached signature of *data* (a DSSE envelope's PAE bytes)."""
        extra = []
        if self.passphrase_file:
            extra = ["--pinentry-mode", "loopback", "--passphrase-file", str(self.passphrase_file)]
        proc = subprocess.run(self._argv(*extra, "--local-user", self.key, "--detach-sign", "--output", "-"),
                              input=data, capture_output=True, timeout=120)
        if proc.returncode != 0 or not proc.stdout:
            where = f" (GNUPGHOME {self.gpg_home})" if self.gpg_home else ""
            raise SigningError(f"gpg --detach-sign failed for key {self.key!r}{where}: "
                               f"{proc.stderr.decode(errors='replace').strip() or proc.returncode}")
        return proc.stdout


# ---------------------------------------------------------------- checking signatures


class SignatureError(AppbuildError):
    """A signature does not verify with the keys trusted, or cannot be checked."""


@dataclass(frozen=True)
class GoodSignature:
    primary: str  # fingerprint of the primary key
    fingerprints: frozenset[str]  # the signing (sub)key's and the primary key's


class Keyring:
    """The OpenPGP public keys a downloader trusts, for checking release signatures.

    Made from a GNUPGHOME directory or a key file (armored or binary, one key or many)
    by :func:`open_keyring`; the keys are copied into a private temporary GNUPGHOME, so
    checking never writes to the user's own keyring.
    """

    def __init__(self, home: Path, source: str):
        self.home = Path(home)
        self.source = source

    def verify(self, data: bytes, signature: bytes, *, what: str = "the data") -> GoodSignature:
        """Check a detached *signature* (armored or binary) of *data*."""
        with tempfile.TemporaryDirectory(prefix="appbuild-sig-") as tmp:
            sig, body = Path(tmp) / "sig", Path(tmp) / "data"
            sig.write_bytes(signature)
            body.write_bytes(data)
            proc = subprocess.run([_gpg(), "--batch", "--no-tty", "--homedir", str(self.home), "--status-fd", "1",
                                   "--verify", str(sig), str(body)], capture_output=True, text=True, timeout=120)
        status = [line.split()[1:] for line in proc.stdout.splitlines() if line.startswith("[GNUPG:] ")]
        for fields in status:
            if fields and fields[0] == "VALIDSIG" and proc.returncode == 0:
                fpr, primary = fields[1].upper(), (fields[10] if len(fields) > 10 else fields[1]).upper()
                return GoodSignature(primary, frozenset({fpr, primary}))
        for fields in status:
            if fields and fields[0] == "BADSIG":
                raise SignatureError(f"BAD signature of {what} (by key {fields[1]}): it was changed after signing")
            if fields and fields[0] in ("ERRSIG", "NO_PUBKEY"):
                key = fields[1]
                if fields[0] == "NO_PUBKEY" or (len(fields) > 6 and fields[6] == "9"):
                    raise SignatureError(f"{what} is signed by key {key}, which is not in the keyring {self.source}")
            if fields and fields[0] in ("EXPKEYSIG", "REVKEYSIG"):
                raise SignatureError(f"{what} is signed by an {'expired' if fields[0] == 'EXPKEYSIG' else 'revoked'} "
                                     f"key ({fields[1]})")
        if not any(f and f[0] == "NEWSIG" for f in status):
            raise SignatureError(f"no OpenPGP signature of {what} found")
        raise SignatureError(f"the signature of {what} does not verify: "
                             f"{proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else proc.returncode}")


def _gpg() -> str:
    gpg = shutil.which("gpg")
    if not gpg:
        raise SignatureError("gpg is not installed (apt-get install gpg): signatures cannot be checked")
    return gpg


@contextmanager
def open_keyring(path: Path | str) -> Iterator[Keyring]:
    """The keys of *path* (a GNUPGHOME directory, or a file of public keys) as a :class:`Keyring`."""
    path = Path(path).expanduser()
    if path.is_dir():
        proc = subprocess.run([_gpg(), "--batch", "--no-tty", "--homedir", str(path), "--export"],
                              capture_output=True, timeout=120)
        keys, what = proc.stdout, f"GNUPGHOME {path}"
    elif path.is_file():
        keys, what = path.read_bytes(), str(path)
    else:
        raise SignatureError(f"keyring {path} does not exist (a GNUPGHOME directory or a public key file)")
    home = Path(tempfile.mkdtemp(prefix="appbuild-keyring-"))
    try:
        home.chmod(0o700)
        proc = subprocess.run([_gpg(), "--batch", "--no-tty", "--homedir", str(home), "--status-fd", "1",
                               "--import"], input=keys, capture_output=True, timeout=120)
        if not any(line.startswith(b"[GNUPG:] IMPORT_OK") for line in proc.stdout.splitlines()):
            raise SignatureError(f"keyring {what} holds no OpenPGP public key")
        yield Keyring(home, what)
    finally:
        if shutil.which("gpgconf"):  # an agent gpg may have started for this home
            subprocess.run(["gpgconf", "--homedir", str(home), "--kill", "all"], capture_output=True)
        shutil.rmtree(home, ignore_errors=True)


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
