"""DSSE envelopes: the signed form of a build's provenance in a release (``NAME.intoto.jsonl``).

`DSSE <https://github.com/secure-systems-lab/dsse>`_ (Dead Simple Signing Envelope) is
what in-toto attestations travel in::

    {"payloadType": "application/vnd.in-toto+json",
     "payload": "<base64 of the in-toto Statement>",
     "signatures": [{"keyid": "<OpenPGP fingerprint>", "sig": "<base64 signature>"}]}

A signature is not made over the payload itself but over its *pre-authentication
encoding* (PAE), which binds the payload type too::

    PAE(type, body) = "DSSEv1" SP LEN(type) SP type SP LEN(body) SP body

(``LEN`` in ASCII decimal, ``SP`` one space). appbuild signs the PAE bytes with the
release key through gpg (a binary detached OpenPGP signature, see ``signing.py``): the
key that signs ``SHA256SUMS``; ``keyid`` is its fingerprint. The release file is JSON
Lines (one envelope per line), the in-toto attestation bundle format. A release
published ``--unsigned`` carries the envelope with no signatures: the provenance is
still there for reading, and every verifier (``appbuild verify`` included) refuses it
as unsigned.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass, field

from appbuilder.core.errors import AppbuildError
from appbuilder.release.signing import Keyring, SignatureError, Signer

PAYLOAD_TYPE = "application/vnd.in-toto+json"


class EnvelopeError(AppbuildError):
    """A DSSE envelope that cannot be read, or whose signatures do not verify."""


def pae(payload_type: str, payload: bytes) -> bytes:
    """DSSE's pre-authentication encoding of *payload* with its type (what is signed)."""
    kind = payload_type.encode()
    return b"DSSEv1 %d %b %d %b" % (len(kind), kind, len(payload), payload)


@dataclass
class Envelope:
    payload: bytes
    payload_type: str = PAYLOAD_TYPE
    signatures: list[dict] = field(default_factory=list)  # {"keyid", "sig" (base64)}

    def to_dict(self) -> dict:
        return {"payloadType": self.payload_type, "payload": base64.b64encode(self.payload).decode(),
                "signatures": list(self.signatures)}

    def line(self) -> bytes:
        """The envelope as one line of JSON Lines."""
        return (json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":")) + "\n").encode()

    def verify(self, keyring: Keyring) -> list[str]:
        """Fingerprints of the keys whose signatures verify with *keyring*; raises
        :class:`EnvelopeError` when there is none, naming why each one failed."""
        if not self.signatures:
            raise EnvelopeError("the envelope has no signature (published --unsigned)")
        good, bad = [], []
        message = pae(self.payload_type, self.payload)
        for i, entry in enumerate(self.signatures):
            keyid = str(entry.get("keyid") or "")
            try:
                sig = base64.b64decode(str(entry.get("sig", "")), validate=True)
            except (binascii.Error, ValueError):
                bad.append(f"signature {i + 1}: not base64")
                continue
            try:
                signer = keyring.verify(message, sig, what="the DSSE envelope")
            except SignatureError as exc:
                bad.append(f"signature {i + 1}{f' (keyid {keyid})' if keyid else ''}: {exc}")
                continue
            if keyid and keyid.upper() not in signer.fingerprints:
                bad.append(f"signature {i + 1}: made by {signer.primary}, but its keyid says {keyid}")
                continue
            good.append(signer.primary)
        if not good:
            raise EnvelopeError("; ".join(bad))
        return good


def sign(payload: bytes, signer: Signer | None, payload_type: str = PAYLOAD_TYPE) -> Envelope:
    """An envelope of *payload*, signed with *signer* (no signature when it is None)."""
    envelope = Envelope(payload, payload_type)
    if signer is not None:
        sig = signer.sign_bytes(pae(payload_type, payload))
        envelope.signatures.append({"keyid": signer.fingerprint(), "sig": base64.b64encode(sig).decode()})
    return envelope


def parse(data: bytes, where: str) -> Envelope:
    """The (first) envelope of a JSON Lines file; an error naming *where* when it is not one."""
    lines = [line for line in data.splitlines() if line.strip()]
    if not lines:
        raise EnvelopeError(f"{where} is empty")
    try:
        obj = json.loads(lines[0])
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise EnvelopeError(f"{where}: not JSON ({exc})") from None
    if not isinstance(obj, dict) or not isinstance(obj.get("payload"), str) \
            or not isinstance(obj.get("payloadType"), str) or not isinstance(obj.get("signatures", []), list):
        raise EnvelopeError(f"{where}: not a DSSE envelope (payloadType, payload, signatures)")
    try:
        payload = base64.b64decode(obj["payload"], validate=True)
    except (binascii.Error, ValueError):
        raise EnvelopeError(f"{where}: the payload is not base64") from None
    signatures = [s for s in obj.get("signatures", []) if isinstance(s, dict)]
    return Envelope(payload, obj["payloadType"], signatures)
