"""A .deb file read with dpkg-deb and turned into a :class:`Capsule`.

* ``dpkg-deb --ctrl-tarfile`` gives the control archive: the ``control`` fields,
  ``conffiles``, ``md5sums``, the maintainer scripts (``preinst``, ``postinst``,
  ``prerm``, ``postrm``, ``config``), ``triggers``, ``shlibs``/``symbols``. The whole
  control archive is kept in the content store (``deb_control_blob`` in the info), the
  scripts and conffiles in the info as text.
* ``dpkg-deb --fsys-tarfile`` gives the data archive, read as a stream: every member is
  checked (see :mod:`~appbuilder.capsule.payload`), every regular file verified against
  ``md5sums`` when the package has one, and stored. Owners, modes and mtimes are the
  package's; conffiles are flagged ``config``.

**Dependencies.** A DEB capsule provides ``deb: PACKAGE``, ``deb: NAME`` for each
``Provides`` name, and the sonames its libraries have (appbuild's ELF scan). It
*requires* only what the ELF scan finds: sonames, dynamic loaders, script
interpreters. ``Depends``/``Pre-Depends`` are recorded (``upstream_requires``, shown by
``appbuild show --deps``) but are not resolver requirements: they name whole Debian
packages and would drag a Debian userland (``libc6`` → ``libgcc-s1`` → ...) into a
minimal appliance; what the files really need is what the scan sees.
"""

from __future__ import annotations

import hashlib
import io
import subprocess
import tarfile
from pathlib import Path

from appbuilder.upstream.depmap import deb_provides, deb_relations
from appbuilder.capsule.model import Capsule, CapsuleError
from appbuilder.capsule.payload import (
    ContentWriter,
    PathChecker,
    StoredContent,
    member_path,
)
from appbuilder.capsule.scan import foreign_note, scan_contents
from appbuilder.core.arch import get_arch
from appbuilder.core.errors import AppbuildError
from appbuilder.core.fileio import sha256_file
from appbuilder.repository.deps import SONAME
from appbuilder.repository.store import ContentStore
from appbuilder.repository.trove import FileEntry
from appbuilder.repository.versions import Flavor, check_upstream

AR_MAGIC = b"!<arch>\n"
SCRIPTS = ("preinst", "postinst", "prerm", "postrm", "config")
PIPE_BUFFER = 1 << 20  # read the data archive from dpkg-deb in large pieces (fewer system calls)
DEPENDS_NOTE = ("Debian Depends/Pre-Depends are recorded as upstream requires, not resolved: "
                "appbuild's ELF scan decides what this package needs")


def parse_control(text: str) -> dict[str, str]:
    """The fields of a ``control`` file (one deb822 stanza), continuation lines kept."""
    fields: dict[str, str] = {}
    key = None
    for line in text.splitlines():
        if not line.strip():
            continue
        if line[0] in " \t" and key:
            fields[key] += "\n" + line[1:]
            continue
        key, sep, value = line.partition(":")
        if not sep:
            raise CapsuleError(f"bad control line {line!r}")
        key = key.strip()
        fields[key] = value.strip()
    return fields


def check_magic(path: Path) -> None:
    with open(path, "rb") as f:
        head = f.read(8 + 60 + 13)
    if head[:8] != AR_MAGIC or head[8:21].rstrip() != b"debian-binary":
        raise CapsuleError(f"{path.name}: not a Debian package (wrong magic)")


def _dpkg_deb(path: Path, option: str) -> subprocess.Popen:
    return subprocess.Popen(["dpkg-deb", option, str(path)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            bufsize=PIPE_BUFFER)


def _control_archive(path: Path) -> tuple[bytes, dict[str, bytes]]:
    try:
        proc = subprocess.run(["dpkg-deb", "--ctrl-tarfile", str(path)], capture_output=True)
    except FileNotFoundError:
        raise CapsuleError("dpkg-deb is not installed (Debian package dpkg): cannot read .deb files") from None
    if proc.returncode != 0:
        raise CapsuleError(f"{path.name}: not a valid Debian package (truncated or corrupted: "
                           f"{proc.stderr.decode(errors='replace').strip()})")
    return proc.stdout, control_tar_members(proc.stdout, path.name)


def control_tar_members(data: bytes, what: str) -> dict[str, bytes]:
    """The regular files of a DEB's control archive (``control``, ``md5sums``, ...) by name;
    a clear error naming *what* when it is unreadable or has no ``control``."""
    members: dict[str, bytes] = {}
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as tar:
            for m in tar:
                if m.isfile():
                    members[m.name.removeprefix("./")] = tar.extractfile(m).read()
    except tarfile.TarError as exc:
        raise CapsuleError(f"{what}: the control archive is unreadable ({exc})") from None
    if "control" not in members:
        raise CapsuleError(f"{what}: the control archive has no control file")
    return members


def _flavor(arch: str, name: str) -> Flavor:
    if arch == "all":
        return Flavor(None)
    try:
        return Flavor(get_arch(arch).name)
    except AppbuildError:
        raise CapsuleError(f"{name}: architecture {arch!r} is not one appbuild builds for (amd64, i386, all)") from None


def _md5sums(text: bytes) -> dict[str, str]:
    sums = {}
    for line in text.decode(errors="replace").splitlines():
        digest, _, path = line.partition("  ")
        path = path.strip()
        if path:
            sums["/" + (path[2:] if path.startswith("./") else path).lstrip("/")] = digest.strip()
    return sums


def _declared_sonames(members: dict[str, bytes]) -> set[str] | None:
    """Sonames the ``shlibs``/``symbols`` files declare, None when the package has neither."""
    if "shlibs" not in members and "symbols" not in members:
        return None
    names = set()
    for line in members.get("shlibs", b"").decode(errors="replace").splitlines():
        parts = line.split()
        if parts and parts[0].endswith(":"):  # "udeb: libfoo 1 ..."
            parts = parts[1:]
        if len(parts) >= 2:
            lib, ver = parts[0], parts[1]
            names.update({f"{lib}.so.{ver}", f"{lib}-{ver}.so"})  # the two forms policy allows
    for line in members.get("symbols", b"").decode(errors="replace").splitlines():
        if line and line[0] not in " \t|*#":
            names.add(line.split()[0])
    return names


def read_deb(path: Path, store: ContentStore, *, expected_sha256: str | None = None,
             writer: ContentWriter | None = None) -> Capsule:
    """Read, check and store one .deb; nothing is committed (``writer.wait()`` first, when shared)."""
    path = Path(path)
    check_magic(path)
    file_sha = sha256_file(path)
    if expected_sha256 and file_sha != expected_sha256.lower():
        raise CapsuleError(f"{path.name}: checksum mismatch: expected sha256 {expected_sha256}, got {file_sha}")
    control_tar, members = _control_archive(path)
    control = parse_control(members["control"].decode(errors="replace"))
    name, version, arch = control.get("Package"), control.get("Version"), control.get("Architecture")
    if not (name and version and arch):
        raise CapsuleError(f"{path.name}: the control file lacks Package, Version or Architecture")
    try:
        check_upstream(version)
    except AppbuildError:
        raise CapsuleError(f"{path.name}: version {version!r} has characters appbuild versions cannot hold") from None
    flavor = _flavor(arch, path.name)
    conffiles, removed_conffiles = _conffiles(members.get("conffiles", b""), path.name)
    md5sums = _md5sums(members.get("md5sums", b""))

    writer = writer or ContentWriter(store)
    before = writer.stored_bytes
    files, contents = _read_data(path, writer, set(conffiles), md5sums)
    stored = writer.stored_bytes - before

    executable = {f.path: bool(f.mode & 0o111) for f in files}
    arch_obj = get_arch(flavor.arch) if flavor.arch else None
    scan = scan_contents([(p, executable[p], c) for p, c in contents.items()], arch_obj)
    for c in contents.values():
        ContentWriter.release(c)

    provides = deb_provides(name, control.get("Provides")) | scan.provides
    notes = [DEPENDS_NOTE]
    declared = _declared_sonames(members)
    if declared is not None:
        scanned = {SONAME.library(d) for d in scan.provides if d.kind is SONAME}
        notes += [f"the ELF scan finds the soname {s} but shlibs/symbols do not list it" for s in sorted(scanned - declared)]
    notes += foreign_note(scan)

    source = control.get("Source", name)
    src_name, _, src_version = source.partition(" ")
    src_version = src_version.strip("()") or version
    info = {
        "capsule": "deb",
        "deb": {k.lower().replace("-", "_"): control[k] for k in (
            "Package", "Version", "Architecture", "Source", "Multi-Arch", "Section", "Priority",
            "Essential", "Maintainer", "Homepage") if k in control},
        "description": control.get("Description", "").split("\n", 1)[0],
        "deb_control_blob": writer.put(control_tar).sha256,
        "scripts": {s: members[s].decode(errors="replace") for s in SCRIPTS if s in members},
        "conffiles": conffiles,
        **({"conffiles_remove_on_upgrade": removed_conffiles} if removed_conffiles else {}),
        "upstream_provides": deb_relations(control.get("Provides")),
        "upstream_requires": deb_relations(control.get("Pre-Depends")) + deb_relations(control.get("Depends")),
        "upstream_pre_depends": deb_relations(control.get("Pre-Depends")),
        "upstream_recommends": deb_relations(control.get("Recommends")),
        "upstream_conflicts": deb_relations(control.get("Conflicts")) + deb_relations(control.get("Breaks")),
        "upstream_replaces": deb_relations(control.get("Replaces")),
        "dependency_notes": notes,
    }
    if "triggers" in members:
        info["triggers"] = members["triggers"].decode(errors="replace")
    if scan.elf:
        info["elf"] = sorted(scan.elf)
    return Capsule(
        kind="deb", name=name, upstream=version, flavor=flavor,
        file_name=path.name, file_sha256=file_sha, file_size=path.stat().st_size,
        source_id=hashlib.sha256(f"deb\0{src_name}\0{src_version}\0{version}".encode()).hexdigest(),
        files=files, provides=provides, requires=scan.requires, info=info,
        upstream_name=f"{name}_{version}_{arch}", stored_bytes=stored,
    )


def _read_data(path: Path, writer: ContentWriter, conffiles: set[str], md5sums: dict[str, str]):
    proc = _dpkg_deb(path, "--fsys-tarfile")
    checker = PathChecker(path.name)
    files: list[FileEntry] = []
    contents: dict[str, StoredContent] = {}
    by_path: dict[str, FileEntry] = {}
    try:
        with tarfile.open(fileobj=proc.stdout, mode="r|") as tar:
            for m in tar:
                p = member_path(m.name, package=path.name)
                if p is None:
                    continue
                common = dict(path=p, mode=m.mode & 0o7777, owner=m.uname or str(m.uid),
                              group=m.gname or str(m.gid), mtime=int(m.mtime))
                if m.isreg():
                    checker.add(p, "file")
                    content = writer.put_stream(tar.extractfile(m).read, m.size)
                    _check_md5(content, md5sums.get(p), p, path.name)
                    contents[p] = content
                    entry = FileEntry(type="file", size=content.size, sha256=content.sha256,
                                      config=p in conffiles, **common)
                elif m.issym():
                    checker.add(p, "symlink", m.linkname)
                    entry = FileEntry(type="symlink", target=m.linkname, **common)
                elif m.islnk():
                    target = member_path(m.linkname, package=path.name)
                    checker.add(p, "hardlink", target)
                    source = by_path.get(target)
                    if source is None or source.type != "file":
                        raise CapsuleError(f"{path.name}: hard link {p} names {target}, not a regular file before it")
                    entry = FileEntry(type="hardlink", size=source.size, sha256=source.sha256, target=target,
                                      config=p in conffiles, **common)
                elif m.isdir():
                    checker.add(p, "dir")
                    entry = FileEntry(type="dir", **common)
                elif m.ischr() or m.isblk():
                    checker.add(p, "device")
                    entry = FileEntry(type="char" if m.ischr() else "block",
                                      rdev=(m.devmajor << 8) | m.devminor, **common)
                elif m.isfifo():
                    checker.add(p, "fifo")
                    entry = FileEntry(type="fifo", **common)
                else:
                    raise CapsuleError(f"{path.name}: {p} has an unsupported tar member type {m.type!r}")
                by_path[p] = entry
                files.append(entry)
        checker.finish()
    except tarfile.TarError as exc:
        proc.kill()
        proc.wait()
        raise CapsuleError(f"{path.name}: the data archive is truncated or corrupted ({exc})") from None
    except BaseException:
        proc.kill()
        proc.wait()
        raise
    finally:
        proc.stdout.close()
    err = proc.stderr.read().decode(errors="replace").strip()
    proc.stderr.close()
    if proc.wait() != 0:
        raise CapsuleError(f"{path.name}: not a valid Debian package (truncated or corrupted: {err})")
    missing = sorted(set(conffiles) - set(by_path))
    if missing:
        raise CapsuleError(f"{path.name}: conffiles not in the package: {', '.join(missing)}")
    return sorted(files, key=lambda f: f.path), contents


def _conffiles(text: bytes, package: str) -> tuple[list[str], list[str]]:
    """The package's conffiles, and those flagged ``remove-on-upgrade`` (deb-conffiles(5)).

    A line is an absolute path, optionally preceded by flags; a ``remove-on-upgrade``
    conffile names a file an older version shipped and this one no longer has.
    """
    kept, removed = [], []
    for line in text.decode(errors="replace").splitlines():
        words = line.split()
        if not words:
            continue
        *flags, conffile = words
        if not conffile.startswith("/"):
            raise CapsuleError(f"{package}: bad conffiles line {line.strip()!r}: expected [FLAGS] /PATH")
        unknown = set(flags) - {"remove-on-upgrade"}
        if unknown:
            raise CapsuleError(f"{package}: conffiles line {line.strip()!r} has unknown flag(s) "
                               f"{', '.join(sorted(unknown))}")
        (removed if flags else kept).append(conffile)
    return sorted(kept), sorted(removed)


def _check_md5(content: StoredContent, expected: str | None, p: str, package: str) -> None:
    if not expected:
        return
    if content.hexdigest("md5") != expected:
        raise CapsuleError(f"{package}: {p} does not match its md5sums entry: the package is corrupted")
