"""An .rpm file read with the rpm bindings and turned into a :class:`Capsule`.

* The header is read with ``rpm.TransactionSet().hdrFromFdno``, which checks the
  header digests (and, when keys are configured, the signature: see
  :mod:`~appbuilder.capsule.rpmsig`).
* The payload is read in-process through librpm (``rpm.files(hdr).archive``), which
  decompresses whatever the package uses (gzip, xz, zstd, ...) and matches every cpio
  member against the header's file list. appbuild checks the payload digest of the
  whole package and the digest of every file against the header, and every path (see
  :mod:`~appbuilder.capsule.payload`).
* File entries keep the package's mode, owner, group, mtime, link target and
  ``%config`` flag; ``%ghost`` files are not in the payload and are listed in the info
  only. Hard links keep their content on the first path (sorted), like cooked packages.
* The original lead, signature and header (everything before the payload) are kept in
  the content store and named by the component's ``rpm_header_blob``: that is what
  :mod:`~appbuilder.capsule.rpmdb` registers in an image's RPM database.
* Scriptlets and triggers are kept in the info as they are (they never run at import).
"""

from __future__ import annotations

import hashlib
import stat
from pathlib import Path

import rpm

from appbuilder.upstream.depmap import RpmDep, map_rpm_deps
from appbuilder.capsule.model import Capsule, CapsuleError
from appbuilder.capsule.payload import (
    ContentWriter,
    PathChecker,
    StoredContent,
    member_path,
)
from appbuilder.capsule.rpmsig import (
    RpmLog,
    TrustPolicy,
    read_header,
    signature_text,
    transaction_set,
)
from appbuilder.capsule.scan import compare_sonames, scan_contents
from appbuilder.core.arch import Arch, get_arch
from appbuilder.core.errors import AppbuildError
from appbuilder.policy.deps import drop_self_provided
from appbuilder.repository.deps import Dependency
from appbuilder.repository.store import ContentStore
from appbuilder.repository.trove import FileEntry
from appbuilder.repository.versions import Flavor, check_upstream

RPM_MAGIC = b"\xed\xab\xee\xdb"
# PAYLOADCOMPRESSOR → librpm I/O type
PAYLOAD_IO = {"gzip": "gzdio", "bzip2": "bzdio", "xz": "xzdio", "lzma": "lzdio", "zstd": "zstdio"}
HASH_ALGOS = {1: "md5", 2: "sha1", 8: "sha256", 9: "sha384", 10: "sha512", 11: "sha224"}
SCRIPTS = {  # info key: (script tag, interpreter tag)
    "pretrans": ("PRETRANS", "PRETRANSPROG"),
    "prein": ("PREIN", "PREINPROG"),
    "postin": ("POSTIN", "POSTINPROG"),
    "preun": ("PREUN", "PREUNPROG"),
    "postun": ("POSTUN", "POSTUNPROG"),
    "posttrans": ("POSTTRANS", "POSTTRANSPROG"),
    "verifyscript": ("VERIFYSCRIPT", "VERIFYSCRIPTPROG"),
}


def _tag(hdr, name: str):
    return hdr[getattr(rpm, f"RPMTAG_{name}")]


def _text(value) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else ("" if value is None else str(value))


def check_magic(path: Path) -> None:
    with open(path, "rb") as f:
        head = f.read(4)
    if head != RPM_MAGIC:
        raise CapsuleError(f"{path.name}: not an RPM package (wrong magic {head.hex() or 'empty file'})")


def package_arch(hdr, name: str) -> Arch | None:
    arch = _tag(hdr, "ARCH")
    if _tag(hdr, "SOURCEPACKAGE") or hdr.isSource():
        raise CapsuleError(f"{name}: a source RPM; only binary packages can be imported as capsules")
    if arch == "noarch":
        return None
    try:
        return get_arch(arch)
    except AppbuildError:
        raise CapsuleError(f"{name}: architecture {arch!r} is not one appbuild builds for (x86_64, i386-i686, noarch)") from None


def upstream_version(hdr) -> str:
    epoch = _tag(hdr, "EPOCH")
    text = f"{_tag(hdr, 'VERSION')}-{_tag(hdr, 'RELEASE')}"
    return f"{epoch}:{text}" if epoch is not None else text


def _deps(hdr, kind: str) -> list[RpmDep]:
    names = _tag(hdr, f"{kind}NAME") or []
    flags = _tag(hdr, f"{kind}FLAGS") or [0] * len(names)
    versions = _tag(hdr, f"{kind}VERSION") or [""] * len(names)
    return [RpmDep(n, f, v) for n, f, v in zip(names, flags, versions)]


def _scripts(hdr) -> dict:
    scripts = {}
    for key, (body_tag, prog_tag) in SCRIPTS.items():
        body, prog = _tag(hdr, body_tag), _tag(hdr, prog_tag)
        if body or prog:
            scripts[key] = {"interpreter": list(prog) if isinstance(prog, list) else ([prog] if prog else []),
                            "body": _text(body)}
    trigger_scripts = _tag(hdr, "TRIGGERSCRIPTS") or []
    if trigger_scripts:
        names, index = _tag(hdr, "TRIGGERNAME") or [], _tag(hdr, "TRIGGERINDEX") or []
        progs = _tag(hdr, "TRIGGERSCRIPTPROG") or []
        scripts["triggers"] = [
            {"on": [n for n, i in zip(names, index) if i == k],
             "interpreter": [progs[k]] if k < len(progs) else [], "body": _text(body)}
            for k, body in enumerate(trigger_scripts)
        ]
    return scripts


def _verify_payload(path: Path, hdr, payload_offset: int, expected_sha256: str | None) -> tuple[str, int]:
    """Hash the file: (sha256 of the whole file, size); checks the payload digest."""
    algo = HASH_ALGOS.get(_tag(hdr, "PAYLOADDIGESTALGO") or 8)
    digests = _tag(hdr, "PAYLOADDIGEST") if algo else None
    sigmd5 = _tag(hdr, "SIGMD5")
    header_start = _header_start(path) if (not digests and sigmd5) else None
    whole = hashlib.sha256()
    payload_hash = hashlib.new(algo) if digests else None
    md5 = hashlib.md5() if header_start is not None else None
    pos = 0
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            whole.update(chunk)
            end = pos + len(chunk)
            if payload_hash is not None and end > payload_offset:
                payload_hash.update(chunk[max(0, payload_offset - pos):])
            if md5 is not None and end > header_start:
                md5.update(chunk[max(0, header_start - pos):])
            pos = end
    digest = whole.hexdigest()
    if expected_sha256 and digest != expected_sha256.lower():
        raise CapsuleError(f"{path.name}: checksum mismatch: expected sha256 {expected_sha256}, got {digest}")
    if payload_hash is not None and payload_hash.hexdigest() not in digests:
        raise CapsuleError(f"{path.name}: payload digest mismatch: the package is truncated or corrupted")
    if md5 is not None and md5.digest() != bytes(sigmd5):
        raise CapsuleError(f"{path.name}: MD5 digest mismatch: the package is truncated or corrupted")
    return digest, pos


def _header_start(path: Path) -> int:
    """Offset of the main header: after the 96-byte lead and the padded signature header."""
    with open(path, "rb") as f:
        f.seek(96)
        intro = f.read(16)
    if len(intro) < 16 or intro[:3] != b"\x8e\xad\xe8":
        raise CapsuleError(f"{path.name}: not a valid RPM package (no signature header)")
    index_len, data_len = int.from_bytes(intro[8:12], "big"), int.from_bytes(intro[12:16], "big")
    size = 16 + 16 * index_len + data_len
    return 96 + size + (-size % 8)


def read_rpm(path: Path, store: ContentStore, policy: TrustPolicy = TrustPolicy(), *,
             keyring=None, expected_sha256: str | None = None, writer: ContentWriter | None = None) -> Capsule:
    """Read, check and store one .rpm; nothing is committed (see :mod:`~appbuilder.capsule.importer`).

    With a shared *writer*, contents may still be being written when this returns:
    ``writer.wait()`` before committing.
    """
    path = Path(path)
    check_magic(path)
    ts = transaction_set(policy, keyring)
    hdr, fd = read_header(ts, path, policy)
    try:
        name = _text(_tag(hdr, "NAME"))
        nevra = _text(hdr.sprintf("%{NAME}-%{EPOCHNUM}:%{VERSION}-%{RELEASE}.%{ARCH}")).replace("-0:", "-")
        arch = package_arch(hdr, path.name)
        upstream = upstream_version(hdr)
        try:
            check_upstream(upstream)
        except AppbuildError:
            raise CapsuleError(f"{path.name}: version {upstream!r} has characters appbuild versions cannot hold") from None
        payload_offset = fd.tell()
        file_sha, file_size = _verify_payload(path, hdr, payload_offset, expected_sha256)
        writer = writer or ContentWriter(store)
        with open(path, "rb") as f:
            header_blob = writer.put(f.read(payload_offset)).sha256
        before = writer.stored_bytes
        files, ghosts, contents = _read_payload(hdr, fd, path.name, writer)
        stored = writer.stored_bytes - before
    finally:
        fd.close()

    executable = {f.path: bool(f.mode & 0o111) for f in files}
    scan = scan_contents([(p, executable[p], c) for p, c in contents.items()], arch)
    for c in contents.values():
        ContentWriter.release(c)

    provides, unmapped_p = map_rpm_deps(_deps(hdr, "PROVIDE"), required=False, arch=arch)
    provides.add(Dependency("rpm", name))
    requires, unmapped_r = map_rpm_deps(_deps(hdr, "REQUIRE"), required=True, arch=arch)
    requires = drop_self_provided(requires, provides, {f.path for f in files})
    loaders = frozenset(a.loader_soname for a in ([arch] if arch else [get_arch("x86_64"), get_arch("x86")]))
    notes = compare_sonames(provides, requires, scan, loaders=loaders)
    notes += [f"upstream dependency with no appbuild form, not resolved: {u}" for u in unmapped_p + unmapped_r]

    info = {
        "capsule": "rpm",
        "rpm": {
            "name": name, "epoch": _tag(hdr, "EPOCH"), "version": _text(_tag(hdr, "VERSION")),
            "release": _text(_tag(hdr, "RELEASE")), "arch": _text(_tag(hdr, "ARCH")),
            "sourcerpm": _text(_tag(hdr, "SOURCERPM")), "summary": _text(_tag(hdr, "SUMMARY")),
            "license": _text(_tag(hdr, "LICENSE")), "buildtime": _tag(hdr, "BUILDTIME"),
            "vendor": _text(_tag(hdr, "VENDOR")), "url": _text(_tag(hdr, "URL")),
            "signature": signature_text(hdr),
        },
        "rpm_header_blob": header_blob,
        "scripts": _scripts(hdr),
        "conffiles": sorted(f.path for f in files if f.config),
        "ghosts": ghosts,
        "upstream_provides": [str(d) for d in _deps(hdr, "PROVIDE")],
        "upstream_requires": [str(d) for d in _deps(hdr, "REQUIRE")],
        "upstream_conflicts": [str(d) for d in _deps(hdr, "CONFLICT")],
        "upstream_obsoletes": [str(d) for d in _deps(hdr, "OBSOLETE")],
        "dependency_notes": notes,
    }
    if scan.elf:
        info["elf"] = sorted(scan.elf)
    source = _text(_tag(hdr, "SOURCERPM")) or f"{name}-{upstream}"
    return Capsule(
        kind="rpm", name=name, upstream=upstream, flavor=Flavor(arch.name if arch else None),
        file_name=path.name, file_sha256=file_sha, file_size=file_size,
        source_id=hashlib.sha256(f"rpm\0{source}\0{upstream}".encode()).hexdigest(),
        files=files, provides=provides, requires=requires, info=info, upstream_name=nevra,
        stored_bytes=stored,
    )


def _read_payload(hdr, fd, package: str, writer: ContentWriter):
    """(file entries, ghost paths, path → stored content of regular files carrying content)."""
    fi = rpm.files(hdr)
    algo = HASH_ALGOS.get(_tag(hdr, "FILEDIGESTALGO") or 1, "md5")
    checker = PathChecker(package)
    meta: dict[str, object] = {}
    ghosts: list[str] = []
    for f in fi:
        path = member_path(f.name, package=package)
        if path is None or path != f.name:
            raise CapsuleError(f"{package}: payload member {f.name!r} is not a normalised absolute path")
        if f.fflags & rpm.RPMFILE_GHOST:
            ghosts.append(path)
            continue
        kind = "symlink" if stat.S_ISLNK(f.mode) else "file"
        checker.add(path, kind, f.linkto if kind == "symlink" else None)
        meta[path] = f
    checker.finish()

    contents: dict[str, StoredContent] = {}
    mark = RpmLog.mark()
    try:
        compressor = _text(_tag(hdr, "PAYLOADCOMPRESSOR")) or "gzip"
        if compressor not in PAYLOAD_IO:
            raise CapsuleError(f"{package}: unknown payload compression {compressor!r}")
        payload = rpm.fd.open(fd, flags=PAYLOAD_IO[compressor])
        archive = fi.archive(payload, write=False)
        for af in archive:
            if af.name in meta and stat.S_ISREG(af.mode) and archive.hascontent():
                f = meta[af.name]
                content = writer.put_stream(_exact_reader(archive, f.size), f.size)
                _check_digest(content, f, algo, package)
                contents[af.name] = content
    except (rpm.error, OSError) as exc:
        detail = RpmLog.since(mark).replace("error: ", "")
        raise CapsuleError(f"{package}: the payload cannot be read, the package is truncated or "
                           f"corrupted ({detail or exc})") from None

    files: list[FileEntry] = []
    for path in sorted(meta):
        f = meta[path]
        common = dict(path=path, mode=f.mode & 0o7777, owner=f.user, group=f.group,
                      config=bool(f.fflags & rpm.RPMFILE_CONFIG), mtime=f.mtime)
        if stat.S_ISREG(f.mode):
            group = [link.name for link in f.links] if f.nlink > 1 else [path]
            carrier = next((p for p in group if p in contents), None)
            if carrier is None:
                if f.size == 0:  # empty files have no content in some payloads
                    contents[path] = writer.put(b"")
                    carrier = path
                else:
                    raise CapsuleError(f"{package}: the payload has no content for {path}: truncated or corrupted")
            first = min(p for p in group if p in meta)
            content = contents[carrier]
            if path == first or f.nlink == 1:
                if carrier != path:
                    contents[path] = contents.pop(carrier)
                files.append(FileEntry(type="file", size=content.size, sha256=content.sha256, **common))
            else:
                files.append(FileEntry(type="hardlink", size=content.size, sha256=content.sha256,
                                       target=first, **common))
        elif stat.S_ISDIR(f.mode):
            files.append(FileEntry(type="dir", **common))
        elif stat.S_ISLNK(f.mode):
            files.append(FileEntry(type="symlink", target=f.linkto, **common))
        elif stat.S_ISCHR(f.mode) or stat.S_ISBLK(f.mode):
            files.append(FileEntry(type="char" if stat.S_ISCHR(f.mode) else "block", rdev=f.rdev, **common))
        elif stat.S_ISFIFO(f.mode):
            files.append(FileEntry(type="fifo", **common))
        else:
            raise CapsuleError(f"{package}: {path} has an unsupported file type {stat.filemode(f.mode)}")
    return files, ghosts, contents


def _exact_reader(archive, size: int):
    """``read(n)`` over one archive member that never asks librpm for more than it holds."""
    left = size

    def read(n: int) -> bytes:
        nonlocal left
        if left <= 0:
            return b""
        chunk = archive.read(min(n, left))
        if not chunk:
            raise OSError("the payload ends inside a file")
        left -= len(chunk)
        return chunk

    return read


def _check_digest(content: StoredContent, f, algo: str, package: str) -> None:
    if not f.digest or set(f.digest) == {"0"}:
        return
    actual = content.hexdigest(algo)
    if actual != f.digest:
        raise CapsuleError(f"{package}: {f.name} does not match its digest in the header: the payload is corrupted")
