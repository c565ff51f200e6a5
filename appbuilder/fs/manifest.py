"""The manifest, ``.cvmfspublished``: which catalog is current, signed.

A few text lines, one field each (a letter, then the value), as CernVM-FS writes them,
then a line ``--`` and the Ed25519 signature of every byte before that line, in hex::

    C<sha256 of the root catalog object>
    B<size of the catalog object in bytes>
    S<revision>
    N<repository name>
    T<unix time of publication>
    D<seconds clients may keep this manifest before asking again>
    A<hash algorithm: sha256>
    K<key id of the signing key>
    --
    <128 hex digits: the signature>

The client refuses a manifest whose key id is not one of the keys it trusts, whose
signature does not verify, or that names another repository. Only the manifest
changes between revisions; it is written last (after every object it leads to) and
atomically (temporary file, then rename).
"""

from __future__ import annotations

from dataclasses import dataclass

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
    algorithm: str = HASH_ALGORITHM
    key_id: str = ""

    def fields(self) -> bytes:
        lines = [f"C{self.catalog}", f"B{self.catalog_size}", f"S{self.revision}", f"N{self.repository}",
                 f"T{self.timestamp}", f"D{self.ttl}", f"A{self.algorithm}", f"K{self.key_id}"]
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


def parse(data: bytes) -> SignedManifest:
    """Split and parse a manifest (the signature is not checked here: see :func:`verify`)."""
    at = data.find(b"\n" + SEPARATOR)
    if at < 0:
        raise ManifestError("the manifest has no '--' line before its signature")
    body, tail = data[:at + 1], data[at + 1 + len(SEPARATOR):]
    try:
        signature = bytes.fromhex(tail.decode("ascii").strip())
    except ValueError:
        raise ManifestError("the manifest's signature is not hex") from None
    if len(signature) != 64:
        raise ManifestError(f"the manifest's signature has {len(signature)} bytes, not 64")
    values: dict[str, str] = {}
    for number, line in enumerate(body.decode("utf-8", "replace").splitlines(), 1):
        if not line:
            raise ManifestError(f"manifest line {number} is empty")
        values[line[0]] = line[1:]
    try:
        manifest = Manifest(
            catalog=values["C"], catalog_size=int(values["B"]), revision=int(values["S"]),
            repository=values["N"], timestamp=int(values["T"]), ttl=int(values.get("D", DEFAULT_TTL)),
            algorithm=values.get("A", HASH_ALGORITHM), key_id=values.get("K", ""))
    except KeyError as exc:
        raise ManifestError(f"the manifest has no field {exc.args[0]!r}") from None
    except ValueError as exc:
        raise ManifestError(f"a manifest field is not a number ({exc})") from None
    if not is_hash(manifest.catalog):
        raise ManifestError(f"the manifest's catalog hash {manifest.catalog!r} is not a {HASH_ALGORITHM} hash")
    if manifest.algorithm != HASH_ALGORITHM:
        raise ManifestError(f"the manifest uses hash algorithm {manifest.algorithm!r}; only {HASH_ALGORITHM} is known")
    return SignedManifest(manifest, body, signature)


def verify(data: bytes, trusted: list[Ed25519PublicKey], repository: str | None = None) -> Manifest:
    """The manifest in *data*, if one of the *trusted* keys signed it (and it is *repository*'s)."""
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
    return signed.manifest
