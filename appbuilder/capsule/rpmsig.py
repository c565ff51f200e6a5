"""Which RPM packages to trust, and reading their headers with the rpm bindings.

The repository configuration (``repo/config.yaml``) may name the keys that sign the
packages a project imports::

    rpm:
      keys: [keys/RPM-GPG-KEY-sl, keys/RPM-GPG-KEY-cernvm]   # relative to the workspace
      require_signature: true      # the default when keys are named

With keys named, every package's header signature (``RSAHEADER``/``DSAHEADER``, the
v4 signatures every EL6+ package carries) is checked against exactly those keys, in a
private keyring: nothing is imported into the machine's rpm database. A package
signed by another key, or whose signature does not verify, is refused; an unsigned one
too unless ``require_signature: false``. Without keys, signatures are not checked
(digests always are). The signature covers the header, which holds the payload digest
and every file's digest; appbuild checks those against the payload it reads, so the
whole package is covered.
"""

from __future__ import annotations

import base64
import os
import re
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

import rpm

from appbuilder.capsule.model import CapsuleError

_ARMOR_RE = re.compile(
    rb"-----BEGIN PGP PUBLIC KEY BLOCK-----.*?-----END PGP PUBLIC KEY BLOCK-----", re.DOTALL
)


@dataclass(frozen=True)
class TrustPolicy:
    keys: tuple[Path, ...] = ()
    require_signature: bool = False

    @classmethod
    def from_settings(cls, settings) -> "TrustPolicy":
        """``rpm.keys`` (relative to the workspace) and ``rpm.require_signature``."""
        keys = tuple(Path(k) if Path(k).is_absolute() else settings.workspace / k for k in settings.get("rpm.keys"))
        for k in keys:
            if not k.is_file():
                raise CapsuleError(f"repo/config.yaml names the RPM key {k}, which does not exist")
        required = settings.get("rpm.require_signature")
        require = bool(keys) if required is None else required
        if require and not keys:
            raise CapsuleError("repo/config.yaml: rpm.require_signature is set but no rpm.keys are named")
        return cls(keys, require)

    def keyring(self) -> "rpm.keyring":
        ring = rpm.keyring()
        for path in self.keys:
            for block in _armored_blocks(path):
                try:
                    ring.addKey(rpm.pubkey(block))
                except (ValueError, rpm.error) as exc:
                    raise CapsuleError(f"{path}: not a usable OpenPGP public key ({exc})") from None
        return ring


def _armored_blocks(path: Path) -> list[bytes]:
    data = path.read_bytes()
    blocks = _ARMOR_RE.findall(data)
    if blocks:
        return blocks
    return [_armor(data)]  # a binary key (gpg --export without --armor)


def _crc24(data: bytes) -> int:
    crc = 0xB704CE
    for byte in data:
        crc ^= byte << 16
        for _ in range(8):
            crc <<= 1
            if crc & 0x1000000:
                crc ^= 0x1864CFB
    return crc & 0xFFFFFF


def _armor(binary: bytes) -> bytes:
    body = base64.encodebytes(binary).decode().replace("\n", "")
    lines = [body[i:i + 64] for i in range(0, len(body), 64)]
    crc = base64.b64encode(_crc24(binary).to_bytes(3, "big")).decode()
    text = "\n".join(["-----BEGIN PGP PUBLIC KEY BLOCK-----", "", *lines, f"={crc}",
                      "-----END PGP PUBLIC KEY BLOCK-----", ""])
    return text.encode()


class RpmLog:
    """librpm's messages go to a private file, so errors can quote them (once per process)."""

    _lock = threading.Lock()
    _file = None

    @classmethod
    def since(cls, pos: int) -> str:
        fd = cls._file.fileno()
        end = os.lseek(fd, 0, os.SEEK_END)
        return os.pread(fd, end - pos, pos).decode(errors="replace").strip()

    @classmethod
    def mark(cls) -> int:
        with cls._lock:
            if cls._file is None:
                cls._file = tempfile.TemporaryFile()
                rpm.setLogFile(cls._file)
                rpm.setVerbosity(rpm.RPMLOG_WARNING)
        return os.lseek(cls._file.fileno(), 0, os.SEEK_END)


def transaction_set(policy: TrustPolicy, keyring=None) -> "rpm.TransactionSet":
    """A TransactionSet for reading package files: digests always, signatures per *policy*."""
    ts = rpm.TransactionSet()
    if policy.keys:
        ts.setKeyring(keyring if keyring is not None else policy.keyring())
        ts.setVfyLevel(rpm.RPMSIG_DIGEST_TYPE | rpm.RPMSIG_SIGNATURE_TYPE)
    else:
        ts.setKeyring(rpm.keyring())  # never the machine's rpmdb keyring
        ts.setVSFlags(rpm._RPMVSF_NOSIGNATURES)
    return ts


def read_header(ts, path: Path, policy: TrustPolicy):
    """(header, rpm fd positioned at the payload) of *path*, or a CapsuleError saying why not."""
    mark = RpmLog.mark()
    fd = rpm.fd.open(str(path))
    try:
        hdr = ts.hdrFromFdno(fd)
    except rpm.error as exc:
        fd.close()
        detail = RpmLog.since(mark)
        if "public key not available" in str(exc) or "NOKEY" in detail:
            key = _key_id(path)
            raise CapsuleError(
                f"{path.name}: signed with key {key or '(unknown)'}, which is not among the trusted "
                "keys (rpm.keys in repo/config.yaml): refused"
            ) from None
        if "not trusted" in str(exc):
            raise CapsuleError(f"{path.name}: signed with an untrusted key: refused") from None
        reason = detail.replace("error: ", "").replace(f"{path}: ", "") or str(exc)
        raise CapsuleError(f"{path.name}: not a valid RPM package (truncated or corrupted header: {reason})") from None
    if policy.keys:
        signature = _signature(hdr)
        if signature is None and policy.require_signature:
            fd.close()
            raise CapsuleError(f"{path.name}: the package is not signed, and repo/config.yaml requires "
                               "signatures (rpm.require_signature): refused")
    return hdr, fd


def _signature(hdr) -> str | None:
    for tag in ("RSAHEADER", "DSAHEADER"):
        if hdr[getattr(rpm, f"RPMTAG_{tag}")]:
            return hdr.sprintf(f"%{{{tag}:pgpsig}}")
    return None


def signature_text(hdr) -> str | None:
    return _signature(hdr)


def _key_id(path: Path) -> str | None:
    ts = rpm.TransactionSet()
    ts.setKeyring(rpm.keyring())
    ts.setVSFlags(rpm._RPMVSF_NOSIGNATURES)
    try:
        fd = rpm.fd.open(str(path))
        try:
            sig = _signature(ts.hdrFromFdno(fd)) or ""
        finally:
            fd.close()
    except rpm.error:
        return None
    m = re.search(r"Key ID ([0-9a-f]+)", sig)
    return m.group(1) if m else None
