"""The policies, in order, from an install root to the packages and components of a cook.

1. **RemoveNonPackageFiles**: files that should not be packaged are removed
   (``r.RemoveNonPackageFiles``; :mod:`appbuilder.policy.destdir`).
2. **Strip** debug information into ``/usr/lib/debug`` (``r.Strip``).
3. **NormalizeManPages**, **NormalizeInfoPages**: man and info pages compressed
   reproducibly, ``.so`` pages made symlinks, the info ``dir`` index removed.
4. **Files**: walk the install root; owners (``r.Ownership``), configuration files
   (``r.Config``), hard links, which directories to keep.
5. **Packages and components**: each file goes to a package (``r.PackageSpec``, the
   recipe's own name otherwise) and, within it, to a component (``r.ComponentSpec`` +
   conary's rules, :mod:`appbuilder.policy.components`).
6. **Dependencies**: sonames, loaders and interpreters of every file (not of files
   below ``%(docdir)s``, nor of ``exceptions=``), less ``exceptDeps=``; hand-written
   ``r.Requires``/``r.Provides``; requirements a component meets itself dropped;
   components require their siblings (``:runtime`` needs ``:lib``, ...).
7. **EnforceSonameBuildRequirements**: report linked libraries that no declared build
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
from appbuilder.policy.deps import FileDeps, drop_self_provided, scan_files
from appbuilder.policy.destdir import (
    Tidied,
    normalize_info_pages,
    normalize_man_pages,
    remove_non_package_files,
)
from appbuilder.policy.enforce import (
    MissingBuildRequirement,
    check_soname_build_requirements,
)
from appbuilder.core.pathpattern import path_regex
from appbuilder.policy.files import FileRules, InstalledFile, walk_install_root
from appbuilder.policy.strip import ObjcopyRunner, strip_tree
from appbuilder.recipe import policy_actions as pa
from appbuilder.recipe.base import PackageRecipe
from appbuilder.repository.deps import SONAME, Dependency, file_dep, trove_dep
from appbuilder.repository.repo import ComponentContents


@dataclass
class PolicyResult:
    components: list[ComponentContents]  # of every package, named PACKAGE:COMPONENT
    contents: dict[str, Path]  # sha256 -> a host file holding that content
    missing_build_requires: list[MissingBuildRequirement] = field(default_factory=list)
    debug_files: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)  # what the policies could not do, by path
    tidied: Tidied = field(default_factory=Tidied)  # what the destdir policies changed

    @property
    def packages(self) -> dict[str, list[ComponentContents]]:
        """The components of each package the cook made, by package name."""
        found: dict[str, list[ComponentContents]] = defaultdict(list)
        for c in self.components:
            found[c.name.split(":", 1)[0]].append(c)
        return dict(found)


def _regexes(macros, patterns) -> list[re.Pattern]:
    return [path_regex(macros.expand(p)) for p in patterns]


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

    def exceptions(cls) -> list[re.Pattern]:
        return [r for s in recipe.settings(cls) for r in _regexes(macros, s.exceptions)]

    # 1. files that are not packaged
    tidied = Tidied()
    tidied.removed += remove_non_package_files(destdir, macros, exceptions(pa.RemoveNonPackageFiles))

    # 2. strip
    strip_settings = recipe.settings(pa.Strip)
    debug_files: list[str] = []
    if all(s.enabled for s in strip_settings):
        skip = tuple(r.pattern for r in exceptions(pa.Strip))
        debug_files = strip_tree(destdir, macros.debuglibdir, skip, objcopy=objcopy, inside=inside)

    # 3. man and info pages
    normalize_man_pages(destdir, macros, exceptions(pa.NormalizeManPages), tidied)
    normalize_info_pages(destdir, macros, exceptions(pa.NormalizeInfoPages), tidied)

    # 4. files
    rules = FileRules(
        ownership=tuple((s.owner, s.group, path_regex(macros.expand(p)))
                        for s in recipe.settings(pa.Ownership) for p in s.patterns),
        config=tuple(_regexes(macros, [p for s in recipe.settings(pa.Config) for p in s.patterns])),
        sysconfdir=macros.sysconfdir,
    )
    files = walk_install_root(destdir, rules)
    if not files:
        raise BuildFailed(f"{name}: the build installed nothing into %(destdir)s")

    # 5. packages and components
    package_rules: list[tuple[str, re.Pattern]] = []
    component_rules: list[tuple[str, tuple[str, ...]]] = []
    catchall = "runtime"
    for a in recipe.actions:
        if isinstance(a, pa.PackageSpec):
            package_rules += [(a.package, r) for r in _regexes(macros, a.patterns)]
        elif isinstance(a, pa.ComponentSpec):
            if a.component:
                component_rules.append((a.component, a.patterns))
                if a.package:
                    package_rules += [(a.package, r) for r in _regexes(macros, a.patterns)]
            if a.catchall:
                catchall = a.catchall
    classifier = Classifier(macros, component_rules, catchall=catchall)
    by_component: dict[tuple[str, str], list[InstalledFile]] = defaultdict(list)
    for f in files:
        path = f.entry.path
        package = next((p for p, r in package_rules if r.search(path)), name)
        comp = classifier.component(path, f.entry.type, f.executable, config=f.entry.config)
        by_component[(package, comp)].append(f)

    # 6. dependencies
    regular = [f for f in files if f.entry.type == "file"]
    scanned = scan_files(((str(f.host_path), f.executable) for f in regular), jobs=jobs)
    file_deps = {f.entry.path: d for f, d in zip(regular, scanned) if d is not None}
    warnings = [f"{path}: an ELF file that cannot be read ({d.problem}); its dependencies are unknown"
                for path, d in file_deps.items() if d.problem]
    _drop_excepted(recipe, file_deps)

    components: list[ComponentContents] = []
    needed_by: dict[Dependency, list[str]] = defaultdict(list)
    for (package, comp), comp_files in sorted(by_component.items()):
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
        main = package == name
        for s in recipe.settings(pa.Requires):
            requires |= _hand_written(s, comp, comp_files, file_deps, macros, main)
        for s in recipe.settings(pa.Provides):
            provides |= _hand_written(s, comp, comp_files, file_deps, macros, main)
        paths = {f.entry.path for f in comp_files}
        requires = drop_self_provided(requires, provides, paths)
        requires |= {trove_dep(f"{package}:{other}") for other in COMPONENT_REQUIRES.get(comp, ())
                     if (package, other) in by_component}
        components.append(ComponentContents(
            name=f"{package}:{comp}",
            files=[f.entry for f in comp_files],
            provides=provides,
            requires=requires,
            info={"elf": sorted(elf_kinds)} if elf_kinds else {},
        ))

    # 7. build requirements
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
    return PolicyResult(components, contents, missing, debug_files, warnings, tidied)


def _drop_excepted(recipe: PackageRecipe, file_deps: dict[str, FileDeps]) -> None:
    """Remove what automatic discovery found where the recipe (or conary's rule for
    documentation) says not to look, and the dependencies ``exceptDeps=`` names."""
    macros = recipe.macros
    docs = path_regex(macros.expand("%(docdir)s/"))
    for cls, attr in ((pa.Requires, "requires"), (pa.Provides, "provides")):
        settings = recipe.settings(cls)
        skip = [r for s in settings for r in _regexes(macros, s.exceptions)] + [docs]
        except_deps = [(path_regex(macros.expand(f)), re.compile(macros.expand(d)))
                       for s in settings for f, d in s.exceptDeps]
        for path, d in file_deps.items():
            found: set[Dependency] = getattr(d, attr)
            if any(r.search(path) for r in skip):
                found.clear()
                continue
            for files, dep in except_deps:
                if files.search(path):
                    found -= {x for x in found if dep.match(str(x))}


def _hand_written(setting, comp: str, comp_files: list[InstalledFile], file_deps: dict[str, FileDeps],
                  macros, main: bool) -> set[Dependency]:
    """The dependencies an ``r.Requires``/``r.Provides`` adds to one component."""
    if setting.dep is None and setting.soname is None and not getattr(setting, "own_path", False):
        return set()  # only exceptions
    if not setting.patterns:
        return {setting.dep} if main and comp == "runtime" and setting.dep is not None else set()
    regexes = _regexes(macros, setting.patterns)
    hits = [f for f in comp_files if any(r.search(f.entry.path) for r in regexes)]
    if not hits:
        return set()
    if setting.dep is not None:
        return {setting.dep}
    if getattr(setting, "own_path", False):
        return {file_dep(f.entry.path) for f in hits}
    found = set()
    for f in hits:  # 'soname: libfoo.so': the ELF class and machine of each ELF file
        d = file_deps.get(f.entry.path)
        if d is not None and d.elf:
            elf, machine = d.elf.split(" ", 1)
            found.add(Dependency(SONAME, f"{elf}/{setting.soname.lstrip('/')}", frozenset((machine,))))
    return found
