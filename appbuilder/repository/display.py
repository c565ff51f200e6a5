"""Text views of the repository for ``appbuild query`` and ``appbuild show`` (``--verify``)."""

from __future__ import annotations

from appbuilder.core.ui import human_size
from appbuilder.repository.repo import Repository
from appbuilder.repository.trove import Trove
from appbuilder.repository.verify import ContentCheck
from appbuilder.repository.versions import NVF


def query_lines(repo: Repository, name: str | None = None) -> list[str]:
    """One line per trove version: packages and groups, or every version of *name*."""
    if name:
        found = repo.versions(name)
    else:
        found = [n for n in repo.packages()] + [n for n in repo.groups()]
    return [str(n) for n in found]


def show_lines(repo: Repository, nvf: NVF, *, files: bool = False, deps: bool = False,
               check: ContentCheck | None = None) -> list[str]:
    """``appbuild show``: a trove, its components or members, optionally files and dependencies.

    With *check* (``--verify``, see :func:`appbuilder.repository.verify.check_trove`) every
    file whose stored content is damaged is marked, and a last line says what was checked.
    """
    trove = repo.get(nvf)
    lines = [f"{trove.nvf}", f"  kind: {trove.kind}"]
    for key in ("recipe", "source", "build_requires", "toolchain", "capsule", "upstream_name"):
        if key in trove.info and trove.info[key]:
            value = trove.info[key]
            lines.append(f"  {key.replace('_', ' ')}: {', '.join(value) if isinstance(value, list) else value}")
    members = [repo.get(m) for m in trove.members] if trove.members else []
    reasons = trove.info.get("reasons", {}) if trove.kind == "group" else {}
    if members:
        lines.append("  components:" if trove.kind == "package" else "  members:")
        for m in members:
            why = reasons.get(str(m.nvf))  # groups: why it is a member (and from which upstream index)
            lines.append(f"    {m.name}  ({len(m.files)} files, {human_size(m.size)})" + (f"  {why}" if why else ""))
    for key in ("resolve_sources", "upstream_base"):
        if trove.info.get(key):
            value = trove.info[key]
            lines.append(f"  {key.replace('_', ' ')}: {', '.join(value) if isinstance(value, list) else value}")
    for comp in members or [trove]:
        if deps:
            lines += _dep_lines(comp)
        if files:
            lines.append(f"  files of {comp.name}:")
            lines += [f"    {f.describe()}{_mark(f.sha256, check)}" for f in comp.files]
    missing = trove.info.get("missing_build_requires")
    if deps and missing:
        lines.append("  build requirements not declared (EnforceSonameBuildRequirements):")
        lines += [f"    {m}" for m in missing]
    if check is not None:
        lines += _check_lines(repo, check, [trove, *members])
    return lines


def _mark(digest: str | None, check: ContentCheck | None) -> str:
    damage = check.damaged.get(digest) if check and digest else None
    return f"  << DAMAGED: {damage.problem}" if damage else ""


def _check_lines(repo: Repository, check: ContentCheck, troves: list[Trove]) -> list[str]:
    lines = []
    for t in troves:  # contents kept beside the files: build logs, package headers
        for key, digest in sorted(repo.blobs(t).items()):
            if digest in check.damaged:
                lines.append(f"  {key.replace('_', ' ')} of {t.name}:{_mark(digest, check)}")
    if check.damaged:
        lines.append(f"  {len(check.damaged)} of {check.checked} stored contents are damaged: run `appbuild verify` "
                     "to check the whole repository, and restore the damaged files from a backup")
        lines += [f"    {d.digest}: {d.path}" for d in check.damaged.values()]
    else:
        lines.append(f"  verified {check.checked} stored contents ({human_size(check.content_bytes)}): no damage")
    return lines


def _dep_lines(trove: Trove) -> list[str]:
    lines = [f"  {trove.name}:"]
    elf = trove.info.get("elf")
    if elf:
        lines.append(f"    ELF: {', '.join(elf)}")
    lines.append("    provides:")
    lines += [f"      {d}" for d in sorted(trove.provides, key=str)] or ["      (nothing)"]
    lines.append("    requires:")
    lines += [f"      {d}" for d in sorted(trove.requires, key=str)] or ["      (nothing)"]
    upstream = trove.info.get("upstream_requires")
    if upstream:  # capsules: the package's own words, version constraints included
        lines.append(f"    upstream requires ({trove.info.get('capsule', 'upstream')}):")
        lines += [f"      {r}" for r in upstream]
    for note in trove.info.get("dependency_notes", []):
        lines.append(f"    note: {note}")
    return lines


