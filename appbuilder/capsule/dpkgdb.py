"""The dpkg database of a root file system holding DEB capsules.

What ``dpkg-query``, ``dpkg -L`` and the scanners that read a Debian system (Trivy,
Grype/Syft, virt-inspector) look at: ``/var/lib/dpkg/status`` with one stanza per DEB
capsule in the image, and ``/var/lib/dpkg/info/NAME.list`` (``NAME:ARCH.list`` for
``Multi-Arch: same`` packages, as dpkg names them; ``info/format`` says so) with the
package's paths, plus ``NAME.md5sums`` so that ``dpkg --verify`` can check them.

With ``state="unpacked"`` (groups whose package scripts run, see
:mod:`appbuilder.assemble.scripts`) the database is the one dpkg leaves after unpacking
and before configuring: ``Status: install ok unpacked``, each conffile's hash
``newconffile`` (its content waits as ``PATH.dpkg-new``), and the maintainer scripts
and other control files (``NAME.preinst``, ``postinst``, ``prerm``, ``postrm``,
``config``, ``templates``, ``triggers``, ``conffiles``, ``shlibs``, ``symbols``) in
``info/``, so that the image's own ``dpkg --configure`` can finish the installation.

Each stanza is the package's own ``control`` file (kept in the content store at import:
``deb_control_blob``) with ``Status: install ok installed`` after ``Package``, and the
package's conffiles with their MD5 sums. Only what the image really holds is listed: an
image keeps just some of a kernel package's modules, so ``NAME.list`` and ``NAME.md5sums``
name only the staged paths. Nothing here runs dpkg or a maintainer script; the output
depends only on the troves, so the same closure gives the same bytes.
"""

from __future__ import annotations

import hashlib
from typing import Iterable

from appbuilder.capsule.deb import control_tar_members, parse_control
from appbuilder.capsule.model import CapsuleError
from appbuilder.repository.store import ContentStore
from appbuilder.repository.trove import Trove

ADMINDIR = "/var/lib/dpkg"
STATUS = f"{ADMINDIR}/status"
INFO = f"{ADMINDIR}/info"
# dpkg's own order of the status fields it knows; others follow in the control file's order
FIELD_ORDER = ("Package", "Status", "Priority", "Section", "Installed-Size", "Maintainer", "Architecture",
               "Multi-Arch", "Source", "Version", "Replaces", "Provides", "Depends", "Pre-Depends",
               "Recommends", "Suggests", "Breaks", "Conflicts", "Enhances", "Conffiles", "Description",
               "Homepage", "Built-Using")
# control files dpkg keeps in info/ as NAME.FILE; the first four are maintainer scripts
MAINTAINER_SCRIPTS = ("preinst", "postinst", "prerm", "postrm", "config")
INFO_FILES = (*MAINTAINER_SCRIPTS, "templates", "triggers", "conffiles", "shlibs", "symbols")
NEW_CONFFILE = "newconffile"  # dpkg's hash of a conffile unpacked but not yet configured


def info_mode(path: str) -> int:
    """The mode of a dpkg database file: maintainer scripts are executable."""
    return 0o755 if path.startswith(INFO + "/") and path.rsplit(".", 1)[-1] in MAINTAINER_SCRIPTS else 0o644


def deb_capsules(troves: Iterable[Trove]) -> list[Trove]:
    """The troves of *troves* that are DEB capsule components, by package name and architecture."""
    found = [t for t in troves if t.info.get("capsule") == "deb" and t.info.get("deb_control_blob")]
    return sorted(found, key=lambda t: (t.package, str(t.flavor)))


def configured_by_dpkg(troves: Iterable[Trove]) -> bool:
    """The image's own dpkg (the package ``dpkg`` among the DEB capsules) configures its DEB
    members when their scripts run; without it (an EL system holding a few Debian
    libraries) their maintainer scripts are not run and the database says "installed"."""
    return any(t.package == "dpkg" for t in deb_capsules(troves))


def control_members(store: ContentStore, trove: Trove) -> dict[str, bytes]:
    """The files of a DEB capsule's control archive (``control``, ``md5sums``, ...)."""
    return control_tar_members(store.read(trove.info["deb_control_blob"]), f"{trove} (stored)")


def control_fields(store: ContentStore, trove: Trove) -> dict[str, str]:
    """The fields of a DEB capsule's ``control`` file, continuation lines kept."""
    return parse_control(control_members(store, trove)["control"].decode(errors="replace"))


def _stanza(fields: dict[str, str]) -> str:
    ordered = [k for k in FIELD_ORDER if k in fields] + [k for k in fields if k not in FIELD_ORDER]
    lines = []
    for key in ordered:
        first, *rest = fields[key].split("\n")
        lines.append(f"{key}: {first}".rstrip() if first else f"{key}:")
        lines += [f" {line}" if line.strip() else " ." for line in rest]
    return "\n".join(lines) + "\n"


def info_name(fields: dict[str, str]) -> str:
    """The name dpkg gives a package's files in ``info/``: NAME, or NAME:ARCH when Multi-Arch: same."""
    name = fields["Package"]
    return f"{name}:{fields['Architecture']}" if fields.get("Multi-Arch") == "same" else name


def dpkg_database(store: ContentStore, troves: Iterable[Trove], present: set[str] | None = None,
                  *, state: str = "installed") -> list[tuple[str, bytes]]:
    """``(path, content)`` of the dpkg database files for the DEB capsules among *troves*.

    *present* is the set of paths the image holds (``None``: every path of the troves);
    a package's list, md5sums and conffiles name only those. Empty when there are no
    DEB capsules. *state* ``unpacked``: as dpkg leaves it before ``--configure`` (see the
    module's docstring; :func:`info_mode` gives the files' modes).
    """
    if state not in ("installed", "unpacked"):
        raise ValueError(f"bad dpkg state {state!r}")
    capsules = deb_capsules(troves)
    if not capsules:
        return []
    stanzas, files = [], []
    for t in capsules:
        members = control_members(store, t)
        fields = parse_control(members["control"].decode(errors="replace"))
        if not fields.get("Package") or not fields.get("Architecture"):
            raise CapsuleError(f"{t}: its control file lacks Package or Architecture")
        kept = [f for f in t.files if present is None or f.path in present]
        by_path = {f.path: f for f in kept}
        status = {"Package": fields["Package"], "Status": f"install ok {state}"}
        status.update((k, v) for k, v in fields.items() if k not in status)
        conffiles = [p for p in t.info.get("conffiles", []) if p in by_path and by_path[p].sha256]
        if conffiles:
            status["Conffiles"] = "\n" + "\n".join(
                f"{p} {NEW_CONFFILE if state == 'unpacked' else hashlib.md5(store.read(by_path[p].sha256)).hexdigest()}"
                for p in conffiles)
        stanzas.append(_stanza(status))
        name = info_name(fields)
        if state == "unpacked":
            for member in INFO_FILES:
                if member in members:
                    files.append((f"{INFO}/{name}.{member}", members[member]))
        listed = ["/."] + [f.path for f in kept]
        files.append((f"{INFO}/{name}.list", "".join(f"{p}\n" for p in listed).encode()))
        sums = members.get("md5sums")
        if sums is not None:
            keep = []
            for line in sums.decode(errors="replace").splitlines():
                _, _, path = line.partition("  ")
                if path and "/" + path.strip().removeprefix("./").lstrip("/") in by_path:
                    keep.append(line + "\n")
            files.append((f"{INFO}/{name}.md5sums", "".join(keep).encode()))
    # info/format 1: file names carry :ARCH for Multi-Arch: same packages (dpkg's multiarch layout)
    return [(STATUS, "\n".join(stanzas).encode()), (f"{INFO}/format", b"1\n"), *files]
