"""``keyid=`` on a source action: the source's detached OpenPGP signature must be good
and made by that key.

The keys are OpenPGP public keys kept in the workspace, in the directory
``cook: source_keys`` names (``keys/upstream/`` unless ``repo/config.yaml`` says
otherwise): every ``*.asc``, ``*.gpg`` and ``*.pgp`` file there, armored or binary.
``gpgv`` checks the signature against a temporary keyring made of exactly those keys:
no keyring of the machine, no key server, no network (conary fetched a missing key
from a key server; appbuild wants it in the workspace, where a review sees it).

The key id is the one conary recipes give (eight hex digits, ``9BB19A22``), or a
longer one, or a fingerprint; it matches the end of the fingerprint of the key that
made the signature or of its primary key. A missing signature, a bad one, one made by
another key, or a key id none of the workspace's keys has is an error (conary only
warned when the signature was missing).
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from appbuilder.core.errors import SourceError
from appbuilder.upstream.gpgv import SignatureError, signed_by
from appbuilder.upstream.lookaside import SIGNATURE_SUFFIXES, Lookaside

KEY_SUFFIXES = (".asc", ".gpg", ".pgp")


def workspace_keys(keys_dir: Path | None) -> list[Path]:
    if keys_dir is None or not keys_dir.is_dir():
        return []
    return sorted(p for p in keys_dir.iterdir() if p.suffix in KEY_SUFFIXES and p.is_file())


def check(signed: Path, sha256: str, keyid: str, *, keys_dir: Path | None, urls: Sequence[str],
          local: Sequence[Path], lookaside: Lookaside) -> Path:
    """The signature of *signed* (content *sha256*) after checking it; see the module.
    *keyid* is upper-case hex (:func:`appbuilder.recipe.source_actions.normal_keyid`)."""
    keys = workspace_keys(keys_dir)
    if not keys:
        raise SourceError(f"{signed.name} must be signed by key {keyid}, but there are no OpenPGP public keys in "
                          f"{keys_dir} (cook: source_keys in repo/config.yaml): put the key there as KEYID.asc")

    def holds(signature: Path) -> None:
        try:
            fingerprints = signed_by(signed, signature, keys, what=f"{signature.name}")
        except SignatureError as exc:
            raise SourceError(f"the signature of {signed.name} by key {keyid} does not hold: {exc}") from None
        if not any(f.upper().endswith(keyid) for f in fingerprints):
            raise SourceError(f"{signature.name} is a good signature of {signed.name}, but by key "
                              f"{', '.join(fingerprints)}, not by key {keyid}")

    for path in local:
        if path.is_file():
            holds(path)
            return path
    if urls:
        found = lookaside.signature(sha256, urls, holds)
        if found is not None:
            return found
    tried = [str(p) for p in local] + list(urls)
    raise SourceError(f"{signed.name} must be signed by key {keyid}, but it has no detached signature "
                      f"(looked for .{', .'.join(SIGNATURE_SUFFIXES)}: {', '.join(tried)})")
