"""Text views of the repository for ``appbuild query`` and ``appbuild show``."""

from __future__ import annotations

from appbuilder.repository.repo import Repository
from appbuilder.repository.trove import Trove
from appbuilder.repository.versions import NVF
from appbuilder.ui import human_size


def query_lines(repo: Repository, name: str | None = None) -> list[str]:
    """One line per trove version: packages and groups, or every version of *name*."""
    if name:
        found = repo.versions(name)
    else:
        found = [n for n in repo.packages()] + [n for n in repo.groups()]
    return [str(n) for n in found]


def show_lines(repo: Repository, nvf: NVF, *, files: bool = False, deps: bool = False) -> list[str]:
    trove = repo.get(nvf)
    lines = [f"{trove.nvf}", f"  kind: {trove.kind}"]
    for key in ("recipe", "source", "build_requires", "capsule", "upstream_name"):
        if key in trove.info and trove.info[key]:
            value = trove.info[key]
            lines.append(f"  {key.replace('_', ' ')}: {', '.join(value) if isinstance(value, list) else value}")
    members = [repo.get(m) for m in trove.members] if trove.members else []
    if members:
        lines.append("  components:" if trove.kind == "package" else "  members:")
        for m in members:
            lines.append(f"    {m.name}  ({len(m.files)} files, {human_size(m.size)})")
    for comp in members or [trove]:
        if deps:
            lines += _dep_lines(comp)
        if files:
            lines.append(f"  files of {comp.name}:")
            lines += [f"    {f.describe()}" for f in comp.files]
    missing = trove.info.get("missing_build_requires")
    if deps and missing:
        lines.append("  build requirements not declared (EnforceSonameBuildRequirements):")
        lines += [f"    {m}" for m in missing]
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


