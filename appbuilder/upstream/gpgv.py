"""OpenPGP signatures of upstream indexes checked with ``gpgv`` (Debian InRelease, rpm-md repomd.xml.asc).

``gpgv`` trusts exactly the keys of the keyrings it is given and nothing else (no
trust database, no agent, no network). Binary keyrings (``.gpg``, as apt's Signed-By
usually names) are used as they are; armored keys (``.asc``, ``RPM-GPG-KEY-*``) are
converted with ``gpg --dearmor`` into a temporary keyring first.
"""

from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path
from typing import Sequence

from appbuilder.core.errors import SourceError


class IndexVerificationError(SourceError):
    """An index file's signature or checksum does not hold: the index is refused."""


class SignatureError(IndexVerificationError):
    """An upstream index's signature is missing, bad, or made by a key not trusted."""


def _binary_keyrings(keys: Sequence[Path], work: Path) -> list[Path]:
    rings = []
    for i, key in enumerate(keys):
        key = Path(key)
        try:
            head = key.read_bytes()[:64]
        except OSError as exc:
            raise SignatureError(f"{key}: cannot read the key ({exc.strerror or exc})") from None
        if b"-----BEGIN PGP" in head:
            out = work / f"key{i}.gpg"
            proc = subprocess.run(["gpg", "--batch", "--no-options", "--homedir", str(work), "--dearmor",
                                   "--output", str(out), str(key)], capture_output=True, text=True)
            if proc.returncode != 0:
                raise SignatureError(f"{key}: not an OpenPGP public key ({proc.stderr.strip()[-300:]})")
            rings.append(out)
        else:
            rings.append(key)
    return rings


def verify(signed: Path, keys: Sequence[Path], *, signature: Path | None = None, what: str | None = None) -> bytes:
    """Check *signed* (a clearsigned file, or the data of the detached *signature*) with
    the *keys*; returns the signed bytes (for a clearsigned file, only what the signature
    covers). Raises :class:`SignatureError` naming the file."""
    what = what or str(signed)
    if not keys:
        raise SignatureError(f"{what}: no keys to check its signature with")
    with tempfile.TemporaryDirectory(prefix="appbuild-gpgv-") as tmp:
        work = Path(tmp)
        work.chmod(0o700)
        argv = ["gpgv", "--homedir", str(work)]
        for ring in _binary_keyrings(keys, work):
            argv += ["--keyring", str(ring)]
        if signature is not None:
            argv += [str(signature), str(signed)]
        else:
            argv += ["--output", "-", str(signed)]
        try:
            proc = subprocess.run(argv, capture_output=True, timeout=120)
        except FileNotFoundError:
            raise SignatureError(f"{what}: gpgv is not installed (apt-get install gpgv)") from None
        if proc.returncode != 0:
            detail = " ".join(line.strip() for line in proc.stderr.decode(errors="replace").splitlines()
                              if "BAD" in line or "NO_PUBKEY" in line or "No public key" in line
                              or "no valid OpenPGP" in line or "not a detached" in line or "verify signatures" in line)
            raise SignatureError(f"{what}: bad or untrusted signature ({detail or 'gpgv exit ' + str(proc.returncode)})")
        return signed.read_bytes() if signature is not None else proc.stdout


def signed_by(signed: Path, signature: Path, keys: Sequence[Path], *, what: str | None = None) -> list[str]:
    """Check the detached *signature* of *signed* with the *keys* (and nothing else);
    returns the fingerprints it was made by: the signing key's and, for a subkey, its
    primary key's. Raises :class:`SignatureError` when it does not hold, saying why."""
    what = what or str(signed)
    if not keys:
        raise SignatureError(f"{what}: no keys to check its signature with")
    with tempfile.TemporaryDirectory(prefix="appbuild-gpgv-") as tmp:
        work = Path(tmp)
        work.chmod(0o700)
        argv = ["gpgv", "--homedir", str(work), "--status-fd", "1"]
        for ring in _binary_keyrings(keys, work):
            argv += ["--keyring", str(ring)]
        argv += [str(signature), str(signed)]
        try:
            proc = subprocess.run(argv, capture_output=True, timeout=120)
        except FileNotFoundError:
            raise SignatureError(f"{what}: gpgv is not installed (apt-get install gpgv)") from None
    status = [line.split()[1:] for line in proc.stdout.decode(errors="replace").splitlines()
              if line.startswith("[GNUPG:] ")]
    valid = [words for words in status if words and words[0] == "VALIDSIG"]
    if proc.returncode == 0 and valid:
        return sorted({w for words in valid for w in (words[1], words[-1]) if len(w) >= 32})
    for words in status:
        if words and words[0] == "BADSIG":
            raise SignatureError(f"{what}: BAD signature by key {words[1]} (the file is not what was signed)")
        if words and words[0] in ("NO_PUBKEY", "ERRSIG") and len(words) > 1:
            raise SignatureError(f"{what}: signed by key {words[1]}, which is not among the keys given")
        if words and words[0] == "NODATA":
            raise SignatureError(f"{what}: not an OpenPGP signature")
    detail = proc.stderr.decode(errors="replace").strip().splitlines()
    raise SignatureError(f"{what}: the signature does not hold ({detail[-1] if detail else 'gpgv exit ' + str(proc.returncode)})")
