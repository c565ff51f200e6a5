"""What ``appbuild images`` prints: the image store's versions, one version, two versions compared.

    appbuild images [group-NAME]            every recorded version (newest first) per arch
    appbuild images show group-NAME=VERSION  trove, builder, times, files with sha256, pins
    appbuild images diff [group-NAME=]V1 [group-NAME=]V2   packages added, removed, changed

All of it is read from the manifests in the image store (``manifest.py``).
"""

from __future__ import annotations

from appbuilder.core.errors import AppbuildError
from appbuilder.core.ui import human_size
from appbuilder.store import manifest as mf
from appbuilder.store.images import ImageStore


def list_lines(store: ImageStore, group: str | None = None) -> list[str]:
    entries = store.entries(group)
    if not entries:
        where = f" of {group}" if group else ""
        return [f"no images{where} in {store.root}"]
    rows = [("GROUP", "VERSION", "ARCH", "BUILT", "SIZE", "FORMATS")]
    for e in entries:
        m = e.manifest
        if m is None:
            rows.append((e.group, e.revision, e.arch, "-", "-", "(no manifest: built before recording)"))
        else:
            rows.append((e.group, e.revision, e.arch, m.built, human_size(m.size), ",".join(sorted(m.formats))))
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    return ["  ".join(c.ljust(w) for c, w in zip(r[:5], widths)) + "  " + r[5] for r in rows]


def show_lines(store: ImageStore, group: str, version: str, arch: str | None = None,
               members: bool = True) -> list[str]:
    lines = []
    for e in store.find(group, version, arch):
        m = e.manifest
        lines += [
            f"{m.trove}",
            f"  directory: {e.directory}",
            f"  built: {m.built}   updated: {m.updated}   by {_builder(m.builder)}",
            f"  kernel {m.kernel}; installed size {human_size(m.installed_size)}; disk {human_size(m.disk_size)}; "
            f"SOURCE_DATE_EPOCH {m.source_date_epoch}",
            f"  build log: {e.directory / m.build_log}  ({len(m.builds)} build{'s' if len(m.builds) != 1 else ''})",
            *([f"  provenance: {e.directory / m.provenance}  (in-toto statement, SLSA provenance)"]
              if m.provenance else []),
            "  formats:",
        ]
        for fmt, names in sorted(m.formats.items()):
            for name in names:
                f = m.files[name]
                lines.append(f"    {fmt:12} {name}  {human_size(f['size'])}  sha256 {f['sha256']}")
        if members:
            lines.append(f"  members ({len(m.members)}):")
            lines += [f"    {pin}" for pin in m.members]
        lines.append("")
    return lines[:-1]


def _builder(builder: dict) -> str:
    text = f"{builder.get('name', 'appbuild')} {builder.get('version', '?')}"
    return text + (f" ({builder['commit'][:12]})" if builder.get("commit") else "")


def _split(spec: str) -> tuple[str | None, str]:
    group, sep, version = spec.partition("=")
    return (group, version.rsplit("/", 1)[-1]) if sep else (None, spec.rsplit("/", 1)[-1])


def _group_of(store: ImageStore, version: str) -> str:
    groups = sorted({e.group for e in store.entries() if e.revision == version and e.manifest})
    if len(groups) == 1:
        return groups[0]
    if not groups:
        raise AppbuildError(f"no recorded image has version {version}; see 'appbuild images'")
    raise AppbuildError(f"version {version} is recorded for {', '.join(groups)}; say which: group-NAME={version}")


def diff_lines(store: ImageStore, old_spec: str, new_spec: str, arch: str | None = None) -> list[str]:
    (g1, v1), (g2, v2) = _split(old_spec), _split(new_spec)
    g1 = g1 or g2 or _group_of(store, v1)
    g2 = g2 or g1
    old = {e.arch: e for e in store.find(g1, v1, arch)}
    new = {e.arch: e for e in store.find(g2, v2, arch)}
    both = sorted(set(old) & set(new))
    if not both:
        raise AppbuildError(f"{g1}={v1} ({', '.join(sorted(old))}) and {g2}={v2} ({', '.join(sorted(new))}) "
                            "share no architecture")
    lines = []
    for a in both:
        changes, same = mf.diff(old[a].manifest, new[a].manifest)
        lines.append(f"{g1}={v1} -> {g2}={v2} ({a})")
        width = max([len(c.name) for c in changes] + [4])
        for c in changes:
            if c.kind == "changed":
                lines.append(f"  changed  {c.name:{width}}  {c.old} -> {c.new}")
            elif c.kind == "added":
                lines.append(f"  added    {c.name:{width}}  {c.new}")
            else:
                lines.append(f"  removed  {c.name:{width}}  {c.old}")
        counts = {k: sum(1 for c in changes if c.kind == k) for k in ("changed", "added", "removed")}
        lines.append(f"  {counts['changed']} changed, {counts['added']} added, {counts['removed']} removed, "
                     f"{same} unchanged")
    return lines
