"""Signing what the repository hands to others: exported snapshots and changesets.

Keys are Ed25519 in PEM files any OpenSSL tool reads (``appbuild repo keygen -o keys``
writes ``keys/repository.key``, PKCS#8, mode 0600, and ``keys/repository.pub``). A key
is named by its *key id*: the first 16 hex digits of the SHA-256 of its 32 raw public
bytes, so a reader can tell "signed by a key I do not trust" from "the signature is wrong".

In ``repo/config.yaml``::

    repository:
      signing_key: keys/repository.key      # signs `repo export` snapshots (and a worker's changesets)
      trusted_keys: [keys/repository.pub]   # what a reader of snapshots / changesets accepts

A reader with trusted keys refuses anything unsigned or signed by another key; with none
configured, it accepts unsigned documents (and checks only the hashes).

A signed document is a JSON object; its signature covers the canonical JSON (sorted keys,
no spaces) of every field but ``signature``, which holds ``{"key_id": ..., "ed25519": HEX}``.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from appbuilder.core.errors import RepositoryError


class RepositoryKeyError(RepositoryError):
    """A repository key file is missing, unreadable or not an Ed25519 key."""


class SignatureRefused(RepositoryError):
    """A document is unsigned where a signature is required, or its signature does not verify."""


def key_id(public: Ed25519PublicKey) -> str:
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


@dataclass(frozen=True)
class Signer:
    """A private key that signs snapshots and changesets."""

    private: Ed25519PrivateKey
    path: Path | None = None

    @property
    def key_id(self) -> str:
        return key_id(self.private.public_key())

    def public_pem(self) -> bytes:
        return public_pem(self.private.public_key())

    def sign(self, data: bytes) -> bytes:
        return self.private.sign(data)

    @classmethod
    def load(cls, path: Path | str) -> "Signer":
        path = Path(path)
        return cls(read_private_key(path, RepositoryKeyError, "the repository signing key",
                                    "make one with `appbuild repo keygen -o DIR`"), path)


def read_private_key(path: Path | str, error: type[Exception], what: str, hint: str) -> Ed25519PrivateKey:
    """The Ed25519 private key in the PEM file *path*; *error* (naming *what*, with *hint* on
    how to make one) when it cannot be read or is not one."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise error(f"cannot read {what} {path}: {exc.strerror or exc} ({hint})") from None
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        raise error(f"{path} is not an unencrypted PEM private key ({exc})") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise error(f"{path} is a {type(key).__name__}, not an Ed25519 key")
    return key


def read_public_key(path: Path | str, error: type[Exception], what: str) -> Ed25519PublicKey:
    """The Ed25519 public key in the PEM file *path*; *error* (naming *what*) otherwise."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise error(f"cannot read {what} {path}: {exc.strerror or exc}") from None
    try:
        key = serialization.load_pem_public_key(data)
    except ValueError as exc:
        raise error(f"{path} is not a PEM public key ({exc})") from None
    if not isinstance(key, Ed25519PublicKey):
        raise error(f"{path} is a {type(key).__name__}, not an Ed25519 key")
    return key


@dataclass(frozen=True)
class TrustedKeys:
    """The public keys a reader accepts signatures from, by key id."""

    keys: dict[str, Ed25519PublicKey] = field(default_factory=dict)
    source: str = ""

    def __bool__(self) -> bool:
        return bool(self.keys)

    @classmethod
    def load(cls, paths) -> "TrustedKeys":
        keys: dict[str, Ed25519PublicKey] = {}
        for path in (Path(p) for p in paths):
            key = read_public_key(path, RepositoryKeyError, "the trusted key")
            keys[key_id(key)] = key
        return cls(keys, ", ".join(str(p) for p in paths))

    @classmethod
    def of(cls, *signers: Signer) -> "TrustedKeys":
        """The public halves of *signers* (tests, and a coordinator trusting its own key)."""
        return cls({s.key_id: s.private.public_key() for s in signers}, "given keys")


def canonical(doc: dict) -> bytes:
    """The bytes a signature covers: the document without ``signature``, as canonical JSON."""
    return json.dumps({k: v for k, v in doc.items() if k != "signature"}, sort_keys=True,
                      separators=(",", ":")).encode()


def sign_document(doc: dict, signer: Signer | None) -> dict:
    """*doc* with its ``signature`` (unchanged when there is no signer)."""
    doc = {k: v for k, v in doc.items() if k != "signature"}
    if signer is not None:
        doc["signature"] = {"key_id": signer.key_id, "ed25519": signer.sign(canonical(doc)).hex()}
    return doc


def check_document(doc: dict, trusted: TrustedKeys | None, *, what: str) -> str | None:
    """Check *doc*'s signature against *trusted*; returns the signing key id (None: unsigned,
    accepted because no key is trusted). Raises :class:`SignatureRefused`."""
    sig = doc.get("signature")
    if not trusted:
        return None
    if not sig:
        raise SignatureRefused(f"{what} is not signed, but keys are trusted ({trusted.source}): refused")
    if not isinstance(sig, dict) or not isinstance(sig.get("key_id"), str) or not isinstance(sig.get("ed25519"), str):
        raise SignatureRefused(f"{what} carries a malformed signature: refused")
    public = trusted.keys.get(sig["key_id"])
    if public is None:
        raise SignatureRefused(f"{what} is signed by key {sig['key_id']}, which is not trusted "
                               f"({trusted.source}): refused")
    try:
        public.verify(bytes.fromhex(sig["ed25519"]), canonical(doc))
    except (InvalidSignature, ValueError):
        raise SignatureRefused(f"BAD signature of {what} (key {sig['key_id']}): it was changed after signing; "
                               f"refused") from None
    return sig["key_id"]


def generate(directory: Path | str, name: str = "repository", *, force: bool = False) -> tuple[Path, Path, str]:
    """Write a new key pair ``DIR/NAME.key`` (0600) and ``DIR/NAME.pub``; returns both paths and the key id."""
    directory = Path(directory)
    private_path, public_path = directory / f"{name}.key", directory / f"{name}.pub"
    if not force and (private_path.exists() or public_path.exists()):
        raise RepositoryKeyError(f"{private_path} or {public_path} already exists (use --force to replace the key "
                                 f"pair; readers trusting the old public key will refuse what the new one signs)")
    private = write_key_pair(private_path, public_path)
    return private_path, public_path, key_id(private.public_key())


def public_pem(public: Ed25519PublicKey) -> bytes:
    """*public* as a PEM SubjectPublicKeyInfo."""
    return public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def write_key_pair(private_path: Path, public_path: Path) -> Ed25519PrivateKey:
    """A new Ed25519 key: the private one written to *private_path* (PKCS#8 PEM, mode 0600),
    the public one to *public_path*, each by a temporary name renamed into place."""
    private_path.parent.mkdir(parents=True, exist_ok=True)
    public_path.parent.mkdir(parents=True, exist_ok=True)
    private = Ed25519PrivateKey.generate()
    pem = private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    tmp = private_path.with_name(f".{private_path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(pem)
    os.replace(tmp, private_path)
    tmp = public_path.with_name(f".{public_path.name}.tmp")
    tmp.write_bytes(public_pem(private.public_key()))
    os.replace(tmp, public_path)
    return private


def _place(settings, value: str) -> Path:
    path = Path(value).expanduser()
    return path if path.is_absolute() else settings.workspace / path


def signer_from(settings) -> Signer | None:
    """The signing key ``repository.signing_key`` names, or None."""
    value = settings.get("repository.signing_key")
    return Signer.load(_place(settings, value)) if value else None


def trusted_from(settings) -> TrustedKeys | None:
    """The keys ``repository.trusted_keys`` names, or None."""
    paths = settings.get("repository.trusted_keys")
    return TrustedKeys.load([_place(settings, p) for p in paths]) if paths else None
