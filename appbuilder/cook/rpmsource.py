"""One file taken out of an RPM package: ``r.addArchive('x.tar.gz', rpm='x.src.rpm')``.

Conary let a recipe name a source that lives inside a (usually source) RPM. The RPM
is a fetched, pinned source like any other; what it holds is hostile all the same, so
nothing of it is unpacked: its header is read with the rpm bindings (header digests
checked, no signature: the RPM is pinned by sha256, or signed with ``keyid=``), the
payload is read in-process through librpm, and only the one regular file asked for is
written, to a path appbuild chooses, after its size and its digest in the header
have been checked. Names in the payload never become paths.

A member is found by its name in the payload: a source RPM's files have bare names
(``hello-2.10.tar.gz``); in a binary RPM a name without ``/`` also matches the one
file whose base name it is.
"""

from __future__ import annotations

import hashlib
import os
import posixpath
import stat
from pathlib import Path

import rpm

from appbuilder.capsule.model import CapsuleError
from appbuilder.capsule.rpm import HASH_ALGOS, PAYLOAD_IO
from appbuilder.capsule.rpmsig import RpmLog, TrustPolicy, read_header, transaction_set
from appbuilder.core.errors import SourceError


def _text(value) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value or "")


def _wanted(names: list[str], member: str, rpm_name: str) -> str:
    if member in names:
        return member
    by_base = [n for n in names if "/" not in member and posixpath.basename(n) == member]
    if len(by_base) == 1:
        return by_base[0]
    listing = ", ".join(sorted(names)[:12]) + (", ..." if len(names) > 12 else "")
    if by_base:
        raise SourceError(f"{rpm_name} holds more than one file named {member}: {', '.join(by_base)}")
    raise SourceError(f"{rpm_name} holds no file {member} (it holds: {listing or 'nothing'})")


def extract_member(rpm_path: Path, member: str, out: Path) -> Path:
    """Write the file *member* of the RPM *rpm_path* to *out* (made anew); returns *out*."""
    rpm_path = Path(rpm_path)
    try:
        hdr, fd = read_header(transaction_set(TrustPolicy()), rpm_path, TrustPolicy())
    except CapsuleError as exc:
        raise SourceError(str(exc)) from None
    try:
        files = {f.name: f for f in rpm.files(hdr)}
        name = _wanted(list(files), member, rpm_path.name)
        f = files[name]
        if not stat.S_ISREG(f.mode):
            raise SourceError(f"{rpm_path.name}: {name} is not a regular file")
        algo = HASH_ALGOS.get(hdr[rpm.RPMTAG_FILEDIGESTALGO] or 1, "md5")
        compressor = _text(hdr[rpm.RPMTAG_PAYLOADCOMPRESSOR]) or "gzip"
        if compressor not in PAYLOAD_IO:
            raise SourceError(f"{rpm_path.name}: unknown payload compression {compressor!r}")
        mark = RpmLog.mark()
        try:
            archive = rpm.files(hdr).archive(rpm.fd.open(fd, flags=PAYLOAD_IO[compressor]), write=False)
            for entry in archive:
                if entry.name != name or not archive.hascontent():
                    continue
                digest = hashlib.new(algo)
                left = f.size
                tmp = out.with_name(out.name + ".part")
                with open(tmp, "wb") as dst:
                    while left > 0:
                        chunk = archive.read(min(left, 1 << 20))
                        if not chunk:
                            raise SourceError(f"{rpm_path.name}: the payload ends inside {name}")
                        digest.update(chunk)
                        dst.write(chunk)
                        left -= len(chunk)
                if f.digest and set(f.digest) != {"0"} and digest.hexdigest() != f.digest:
                    os.unlink(tmp)
                    raise SourceError(f"{rpm_path.name}: {name} does not match its digest in the header")
                os.replace(tmp, out)
                return out
        except (rpm.error, OSError) as exc:
            detail = RpmLog.since(mark).replace("error: ", "")
            raise SourceError(f"{rpm_path.name}: the payload cannot be read ({detail or exc})") from None
        raise SourceError(f"{rpm_path.name}: the payload has no content for {name}")
    finally:
        fd.close()
