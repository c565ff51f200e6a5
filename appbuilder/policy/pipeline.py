"""The policies, in order, from an install root to the components of a package.

1. **Strip** debug information into ``/usr/lib/debug`` (``r.Strip``).
2. **Files**: walk the install root; owners (``r.Ownership``), configuration files
   (``r.Config``), hard links, which directories to keep.
3. **Components**: classify every file (``r.ComponentSpec`` + default rules).
4. **Dependencies**: sonames, loaders and interpreters of every file; hand-written
   ``r.Requires``/``r.Provides``; requirements a component meets itself dropped;
   components require their siblings (``:runtime`` needs ``:lib``, ...).
5. **EnforceSonameBuildRequirements**: report linked libraries that no declared build
   requirement provides.
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from appbuilder.core.errors import BuildFailed
from appbuilder.policy.components import COMPONENT_REQUIRES, Classifier
from appbuilder.policy.deps import drop_self_provided, scan_files
from appbuilder.policy.enforce import (
    MissingBuildRequirement,
    check_soname_build_requirements,
)
from appbuilder.policy.files import FileRules, InstalledFile, walk_install_root
from appbuilder.policy.strip import ObjcopyRunner, strip_tree
from appbuilder.recipe import policy_actions as pa
from appbuilder.recipe.base import PackageRecipe
from appbuilder.repository.deps import Dependency, trove_dep
from appbuilder.repository.repo import ComponentContents


@dataclass
class PolicyResult:
    components: list[ComponentContents]
    contents: dict[str, Path]  # sha256 -> a host file holding that content
    missing_build_requires: list[MissingBuildRequirement] = field(default_factory=list)
    debug_files: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)  # what the policies could not do, by path


def run_policies(
    recipe: PackageRecipe,
    destdir: Path,
    *,
    declared: set[Dependency],
    suggest: Callable[[Dependency], str | None] = lambda d: None,
    jobs: int = 1,
    objcopy: ObjcopyRunner,
    inside: str | None = None,
) -> PolicyResult:
    """The policies over *destdir*; *objcopy* runs the strip policy's objcopy command lines
    where the install root is seen as *inside* (see :mod:`appbuilder.policy.strip`)."""
    macros = recipe.macros
    name = recipe.name

    # 1. strip
    strip_settings = recipe.settings(pa.Strip)
    debug_files: list[str] = []
    if all(s.enabled for s in strip_settings):
        exceptions = tuple(p for s in strip_settings for p in (macros.expand(x) for x in s.exceptions))
        debug_files = strip_tree(destdir, macros.debuglibdir, exceptions, objcopy=objcopy, inside=inside)

    # 2. files
    rules = FileRules(
        ownership=tuple((s.owner, s.group, re.compile(macros.expand(p)))
                        for s in recipe.settings(pa.Ownership) for p in s.patterns),
        config=tuple(re.compile(macros.expand(p)) for s in recipe.settings(pa.Config) for p in s.patterns),
        sysconfdir=macros.sysconfdir,
    )
    files = walk_install_root(destdir, rules)
    if not files:
        raise BuildFailed(f"{name}: the build installed nothing into %(destdir)s")

    # 3. components
    classifier = Classifier(macros, [(s.component, s.patterns) for s in recipe.settings(pa.ComponentSpec)])
    by_component: dict[str, list[InstalledFile]] = defaultdict(list)
    for f in files:
        comp = "config" if f.entry.config else classifier.component(f.entry.path, f.entry.type, f.executable)
        by_component[comp].append(f)

    # 4. dependencies
    regular = [f for f in files if f.entry.type == "file"]
    scanned = scan_files(((str(f.host_path), f.executable) for f in regular), jobs=jobs)
    file_deps = {f.entry.path: d for f, d in zip(regular, scanned) if d is not None}
    warnings = [f"{path}: an ELF file that cannot be read ({d.problem}); its dependencies are unknown"
                for path, d in file_deps.items() if d.problem]

    components: list[ComponentContents] = []
    needed_by: dict[Dependency, list[str]] = defaultdict(list)
    for comp, comp_files in sorted(by_component.items()):
        provides: set[Dependency] = set()
        requires: set[Dependency] = set()
        elf_kinds: set[str] = set()
        for f in comp_files:
            d = file_deps.get(f.entry.path)
            if d is None:
                continue
            provides |= d.provides
            requires |= d.requires
            if d.elf:
                elf_kinds.add(d.elf)
            for r in d.requires:
                needed_by[r].append(f.entry.path)
        for setting, target in ((pa.Requires, requires), (pa.Provides, provides)):
            for s in recipe.settings(setting):
                if _applies(s.patterns, comp, comp_files, macros):
                    target.add(s.dep)
        paths = {f.entry.path for f in comp_files}
        requires = drop_self_provided(requires, provides, paths)
        requires |= {trove_dep(f"{name}:{other}") for other in COMPONENT_REQUIRES.get(comp, ()) if other in by_component}
        components.append(ComponentContents(
            name=f"{name}:{comp}",
            files=[f.entry for f in comp_files],
            provides=provides,
            requires=requires,
            info={"elf": sorted(elf_kinds)} if elf_kinds else {},
        ))

    # 5. build requirements
    package_provides = set().union(*(c.provides for c in components))
    enforce = recipe.settings(pa.EnforceSonameBuildRequirements)
    missing = check_soname_build_requirements(
        {r: files for r, files in needed_by.items() if not any(r.satisfied_by(p) for p in package_provides)},
        declared,
        exceptions=tuple(p for s in enforce for p in s.exceptions),
        suggest=suggest,
    )
    if missing and any(s.fatal for s in enforce):
        raise BuildFailed(f"{name}: " + "\n  ".join(str(m) for m in missing))

    contents = {f.entry.sha256: f.host_path for f in files if f.entry.type == "file" and f.entry.sha256}
    return PolicyResult(components, contents, missing, debug_files, warnings)


def _applies(patterns, comp: str, comp_files: list[InstalledFile], macros) -> bool:
    if not patterns:
        return comp == "runtime"
    regexes = [re.compile(macros.expand(p)) for p in patterns]
    return any(r.fullmatch(f.entry.path) for f in comp_files for r in regexes)
