"""The manifest, ``.cvmfspublished``: which catalog is current, signed.

A few text lines, one field each (a letter, then the value), as CernVM-FS writes them,
then a line ``--`` and the Ed25519 signature of every byte before that line, in hex::

    C<sha256 of the root catalog object>
    B<size of the catalog object in bytes>
    S<revision>
    N<repository name>
    T<unix time it was signed (published, or re-signed)>
    D<seconds clients may keep this manifest before asking again>
    E<unix time it expires: T + 30 days unless publish or resign is told otherwise>
    A<hash algorithm: sha256>
    K<key id of the signing key>
    --
    <128 hex digits: the signature>

The client refuses a manifest whose key id is not one of the keys it trusts, whose
signature does not verify, that names another repository, or that has no expiry or
is past it: a server (or a man in the middle) cannot keep showing clients an old
revision for ever. A publisher re-signs the current revision before it expires
(``appbuild fs resign``, from cron: same revision and catalog, new ``T`` and ``E``).
Only the manifest and the tag list change between revisions; the manifest is written
last (after every object it leads to and the tag list) and atomically (temporary
file, then rename).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime

from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from appbuilder.core.errors import AppbuildError
from appbuilder.fs import keys
from appbuilder.fs.objects import HASH_ALGORITHM, is_hash

MANIFEST_NAME = ".cvmfspublished"
SEPARATOR = b"--\n"
DEFAULT_TTL = 240  # CernVM-FS's default: clients look for a new revision every four minutes
DEFAULT_VALID_DAYS = 30  # how long a signed manifest or tag list is good for
DAY = 86400


def utc(timestamp: int) -> str:
    """A unix time as people read it: ``2025-01-31 12:00:00 UTC``."""
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def expiry(timestamp: int, valid_days: int) -> int:
    """The expiry time of something signed at *timestamp*, good for *valid_days* days."""
    if not isinstance(valid_days, int) or isinstance(valid_days, bool) or not 1 <= valid_days <= 3660:
        raise ManifestError(f"the validity must be a whole number of days from 1 to 3660, not {valid_days!r}")
    return timestamp + valid_days * DAY


class ManifestError(AppbuildError):
    """A manifest cannot be parsed, or fails its signature check."""


@dataclass(frozen=True)
class Manifest:
    catalog: str  # hash of the root catalog object
    catalog_size: int
    revision: int
    repository: str
    timestamp: int
    ttl: int = DEFAULT_TTL
    expires: int = 0  # unix time; 0: none (refused by verify)
    algorithm: str = HASH_ALGORITHM
    key_id: str = ""

    def fields(self) -> bytes:
        lines = [f"C{self.catalog}", f"B{self.catalog_size}", f"S{self.revision}", f"N{self.repository}",
                 f"T{self.timestamp}", f"D{self.ttl}"]
        if self.expires:
            lines.append(f"E{self.expires}")
        lines += [f"A{self.algorithm}", f"K{self.key_id}"]
        return ("\n".join(lines) + "\n").encode()


def render(manifest: Manifest, private: Ed25519PrivateKey) -> bytes:
    """The signed manifest text (the key id is the signing key's)."""
    signed = Manifest(**{**manifest.__dict__, "key_id": keys.key_id(private.public_key())})
    body = signed.fields()
    return body + SEPARATOR + keys.sign(private, body).hex().encode() + b"\n"


@dataclass(frozen=True)
class SignedManifest:
    manifest: Manifest
    body: bytes  # the signed bytes
    signature: bytes


def split_signed(data: bytes, what: str, error: type[AppbuildError]) -> tuple[bytes, bytes]:
    """(the signed bytes, the 64-byte signature) of a signed text *what* (the manifest, the tag
    list): every byte before its ``--`` line, and the hex after it; *error* says what is wrong."""
    at = data.find(b"\n" + SEPARATOR)
    if at < 0:
        raise error(f"the {what} has no '--' line before its signature")
    body, tail = data[:at + 1], data[at + 1 + len(SEPARATOR):]
    try:
        signature = bytes.fromhex(tail.decode("ascii").strip())
    except (ValueError, UnicodeDecodeError):
        raise error(f"the {what}'s signature is not hex") from None
    if len(signature) != 64:
        raise error(f"the {what}'s signature has {len(signature)} bytes, not 64")
    return body, signature


def parse(data: bytes) -> SignedManifest:
    """Split and parse a manifest (the signature is not checked here: see :func:`verify`)."""
    body, signature = split_signed(data, "manifest", ManifestError)
    values: dict[str, str] = {}
    for number, line in enumerate(body.decode("utf-8", "replace").splitlines(), 1):
        if not line:
            raise ManifestError(f"manifest line {number} is empty")
        values[line[0]] = line[1:]
    try:
        manifest = Manifest(
            catalog=values["C"], catalog_size=int(values["B"]), revision=int(values["S"]),
            repository=values["N"], timestamp=int(values["T"]), ttl=int(values.get("D", DEFAULT_TTL)),
            expires=int(values.get("E", 0)), algorithm=values.get("A", HASH_ALGORITHM), key_id=values.get("K", ""))
    except KeyError as exc:
        raise ManifestError(f"the manifest has no field {exc.args[0]!r}") from None
    except ValueError as exc:
        raise ManifestError(f"a manifest field is not a number ({exc})") from None
    if not is_hash(manifest.catalog):
        raise ManifestError(f"the manifest's catalog hash {manifest.catalog!r} is not a {HASH_ALGORITHM} hash")
    if manifest.algorithm != HASH_ALGORITHM:
        raise ManifestError(f"the manifest uses hash algorithm {manifest.algorithm!r}; only {HASH_ALGORITHM} is known")
    return SignedManifest(manifest, body, signature)


def verify(data: bytes, trusted: list[Ed25519PublicKey], repository: str | None = None, *,
           now: int | None = None, check_expires: bool = True) -> Manifest:
    """The manifest in *data*, if one of the *trusted* keys signed it, it is *repository*'s and it
    has not expired by *now* (default: the current time; ``check_expires=False``: the publisher
    re-signing its own manifest, which may have expired)."""
    signed = parse(data)
    by_id = {keys.key_id(k): k for k in trusted}
    key = by_id.get(signed.manifest.key_id)
    if key is None:
        raise ManifestError(f"the manifest is signed by an unknown key {signed.manifest.key_id or '(none)'} "
                            f"(trusted: {', '.join(sorted(by_id)) or 'none'})")
    if not keys.verify(key, signed.signature, signed.body):
        raise ManifestError(f"bad signature: the manifest does not verify with key {signed.manifest.key_id}")
    if repository is not None and signed.manifest.repository != repository:
        raise ManifestError(f"the manifest is for repository {signed.manifest.repository!r}, not {repository!r}")
    if check_expires:
        check_expiry(signed.manifest, now)
    return signed.manifest


def check_expiry(manifest: Manifest, now: int | None = None) -> None:
    """Refuse *manifest* if it has no expiry time or it has passed."""
    now = int(time.time()) if now is None else now
    what = f"the manifest of {manifest.repository} revision {manifest.revision}"
    if not manifest.expires:
        raise ManifestError(f"{what} has no expiry time (no E line: an older publisher signed it); "
                            f"re-sign it with 'appbuild fs resign'")
    if now >= manifest.expires:
        raise ManifestError(f"{what} expired at {utc(manifest.expires)}; the publisher must re-sign it "
                            f"('appbuild fs resign')")
