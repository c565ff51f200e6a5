"""Repository keys: Ed25519, in PEM files any OpenSSL tool reads.

``appbuild fs keygen --repo NAME -o DIR`` writes ``DIR/NAME.key`` (the private key,
PKCS#8, mode 0600: it signs every revision, keep it on the publishing machine) and
``DIR/NAME.pub`` (the public key, SubjectPublicKeyInfo: it goes into the appliance as
``/etc/cvmfs/keys/NAME.pub``). A key is named in manifests by its *key id*: the
first 16 hex digits of the SHA-256 of its 32 raw public bytes, so a client can tell
"signed by a key I do not trust" from "the signature is wrong".

Why Ed25519 rather than CernVM-FS's RSA + X.509 whitelist: 32-byte keys and 64-byte
signatures, no parameters to get wrong, deterministic signatures; the client verifies
them with libsodium (``crypto_sign_ed25519_verify_detached``), which it links for SHA-256 anyway.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from appbuilder.core.errors import AppbuildError
from appbuilder.repository.keys import (  # key_id, public_pem: fs.keys' API too
    key_id,
    public_pem,
    read_private_key,
    read_public_key,
    write_key_pair,
)


class KeyFileError(AppbuildError):
    """A key file is missing, unreadable or not an Ed25519 key."""


@dataclass(frozen=True)
class KeyPair:
    private_path: Path
    public_path: Path
    key_id: str


def generate(repo: str, directory: Path, *, force: bool = False) -> KeyPair:
    """Write a new key pair for *repo* into *directory*."""
    directory = Path(directory)
    private_path, public_path = directory / f"{repo}.key", directory / f"{repo}.pub"
    if not force and (private_path.exists() or public_path.exists()):
        raise KeyFileError(f"{private_path} or {public_path} already exists (use --force to replace the key pair; "
                        f"clients trusting the old public key will refuse the new revisions)")
    private = write_key_pair(private_path, public_path)
    return KeyPair(private_path, public_path, key_id(private.public_key()))


def load_private(path: Path) -> Ed25519PrivateKey:
    return read_private_key(path, KeyFileError, "the repository key",
                            "make one with 'appbuild fs keygen --repo NAME -o DIR'")


def load_public(path: Path) -> Ed25519PublicKey:
    return read_public_key(path, KeyFileError, "the public key")


def sign(private: Ed25519PrivateKey, data: bytes) -> bytes:
    return private.sign(data)


def verify(public: Ed25519PublicKey, signature: bytes, data: bytes) -> bool:
    try:
        public.verify(signature, data)
        return True
    except InvalidSignature:
        return False
