"""conary's query forms over the repository: ``appbuild rq`` and ``appbuild q``.

conary had two: ``conary rq`` asked the repository, ``conary q`` the troves installed on
this system. appbuild builds images rather than installing packages, so ``q`` asks one
group version's closure, the system an image of it holds (which group version is chosen
by :mod:`appbuilder.store.installed`); ``rq`` asks the repository. Both take the same
trove specs (``name``, ``name=version``, ``name=version[flavor]``, ``name[flavor]``) and
the same views, as conary's:

``--info``       name, version, label, flavor, size, kind, build time, source, build requirements
``--troves``     the troves inside: a package's components (a group's members)
``--ls``         the paths of its files; ``--lsl`` as ``ls -l`` does
``--deps``       what it provides and requires
``--path FILE``  the troves that hold FILE (conary's "which trove owns this file")

A package's files and dependencies are those of its components (in ``q``, of the
components the system holds).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Iterable

from appbuilder.core.errors import RepositoryError
from appbuilder.core.ui import human_size
from appbuilder.repository import index
from appbuilder.repository.display import _dep_lines as dep_lines  # the view `appbuild show --deps` prints
from appbuilder.repository.repo import Repository
from appbuilder.repository.trove import COMPONENT, Trove
from appbuilder.repository.versions import NVF, TroveSpec


@dataclass(frozen=True)
class View:
    """What to print of each trove found."""

    info: bool = False
    troves: bool = False
    ls: bool = False
    lsl: bool = False
    deps: bool = False
    full_versions: bool = False  # label/revision, as conary's --full-versions
    flavors: bool = False  # [flavor], as conary's --flavors


def parse_specs(texts: Iterable[str]) -> list[TroveSpec]:
    """The trove specs a user typed, or an error naming the bad one."""
    specs = []
    for text in texts:
        spec = TroveSpec.parse(text)
        if spec.version and "--" in spec.version:
            raise RepositoryError(f"bad trove spec {text!r}: 'name=V1--V2' names a change (appbuild showcs {text})")
        specs.append(spec)
    return specs


def name_line(nvf: NVF, view: View) -> str:
    """``name=revision``, with the label (``--full-versions``) and ``[flavor]`` (``--flavors``)."""
    text = f"{nvf.name}={nvf.version if view.full_versions else nvf.version.revision}"
    return text + (f"[{nvf.flavor}]" if view.flavors else "")


def newest_per_flavor(found: list[NVF]) -> list[NVF]:
    """The newest of each (name, flavor) among *found* (oldest first), as conary shows a name."""
    newest: dict[tuple[str, str], NVF] = {}
    for nvf in found:
        newest[(nvf.name, str(nvf.flavor))] = nvf
    return list(newest.values())


class Query:
    """Troves found by spec or path, and their views; *within* limits it to one closure (``q``)."""

    def __init__(self, repo: Repository, *, arch: str | None = None, within: list[NVF] | None = None,
                 all_versions: bool = False):
        self.repo = repo
        self.arch = arch
        self.within = set(within) if within is not None else None
        self.all_versions = all_versions

    def _keep(self, found: list[NVF]) -> list[NVF]:
        if self.within is not None:
            found = [n for n in found if n in self.within]
        found = found if self.all_versions or self.within is not None else newest_per_flavor(found)
        return sorted(found, key=lambda n: (n.name, str(n.flavor), n.version))

    def select(self, specs: list[str], paths: list[str], where: str) -> list[NVF]:
        """The troves a query names: by trove spec, by ``--path``, or all of them; once each."""
        if specs and paths:
            raise RepositoryError("--path names the troves itself: give either trove specs or --path FILE")
        if paths:
            found = [n for path in paths for n in self.by_path(path)]
            if not found:
                raise RepositoryError(f"{where} holds no file {' or '.join(paths)}")
        elif specs:
            found = [n for spec in parse_specs(specs) for n in self.by_spec(spec, where)]
        else:
            found = self.everything()
        return list(dict.fromkeys(found))

    def everything(self) -> list[NVF]:
        """Every package and group (``rq``), or every package the closure holds, with the
        components it holds without their package (``q``)."""
        if self.within is None:
            found = [n for n in [*self.repo.packages(), *self.repo.groups()]
                     if self.arch is None or n.flavor.installable_on(self.arch)]
            return self._keep(found)
        names = {n.name for n in self.within}
        return sorted((n for n in self.within if ":" not in n.name or n.package not in names),
                      key=lambda n: (n.name, str(n.flavor)))

    def by_spec(self, spec: TroveSpec, where: str) -> list[NVF]:
        """Troves matching *spec*, or an error saying what exists (*where*: what was asked)."""
        found = self._keep(self.repo.find(spec, arch=self.arch))
        if found:
            return found
        if self.within is None:
            self.repo.find_one(spec, arch=self.arch)  # raises, naming the versions there are
        held = sorted(name_line(n, View()) for n in self.within if n.name == spec.name)
        hint = (f"; it holds {', '.join(held)}" if held else
                f"; `appbuild rq {spec}` asks the repository" if self.repo.find(spec) else
                "; the repository has no trove of that name")
        raise RepositoryError(f"{where} holds no trove matching {spec}{hint}")

    def by_path(self, path: str) -> list[NVF]:
        """The components that hold *path* (in the closure, or their newest versions)."""
        if not path.startswith("/"):
            raise RepositoryError(f"--path takes an absolute path, not {path!r}")
        found = [n for n in self.repo.owners(path) if self.arch is None or n.flavor.installable_on(self.arch)]
        return self._keep(found)

    # ------------------------------------------------------------ views

    def lines(self, nvf: NVF, view: View) -> list[str]:
        """What *view* shows of one trove."""
        trove = self.repo.get(nvf)
        lines = self.info_lines(trove) if view.info else [name_line(nvf, view)]
        parts = self._parts(trove)
        if view.troves:
            lines += [f"  {name_line(m, view)}" for m in parts if m != nvf]
        if view.ls or view.lsl:
            for comp in self._with_files(trove, parts):
                lines += [f"  {f.describe() if view.lsl else f.path}" for f in comp.files]
        if view.deps:
            for comp in self._with_files(trove, parts):
                lines += dep_lines(comp)
        return lines

    def _parts(self, trove: Trove) -> list[NVF]:
        """A package's components (a group's members) the query may see."""
        members = list(trove.members)
        return [m for m in members if m in self.within] if self.within is not None else members

    def _with_files(self, trove: Trove, parts: list[NVF]) -> list[Trove]:
        if trove.kind == COMPONENT or not trove.members:
            return [trove]
        return [self.repo.get(m) for m in parts if ":" in m.name]

    def info_lines(self, trove: Trove) -> list[str]:
        """conary's ``--info``: two columns of fields."""
        comps = self._with_files(trove, self._parts(trove))
        size = sum(c.size for c in comps) if trove.members else trove.size
        info = trove.info
        left = [("Name", trove.name), ("Version", trove.version.revision), ("Flavor", str(trove.flavor) or "(none)"),
                ("Size", f"{size} ({human_size(size)})")]
        right = [("Build time", self._committed(trove.nvf)), ("Label", trove.version.label), ("Kind", trove.kind),
                 ("Files", str(sum(len(c.files) for c in comps)))]
        lines = [f"{a:<10}: {b:<26} {c:<10}: {d}" for (a, b), (c, d) in zip(left, right)]
        source = info.get("recipe") or info.get("upstream_name") or info.get("capsule")
        if source:
            lines.append(f"{'Source':<10}: {source}" + (f" ({info['capsule']} capsule)" if info.get("capsule")
                                                       and source != info.get("capsule") else ""))
        for key, title in (("build_requires", "Build reqs"), ("toolchain", "Toolchain"), ("license", "License")):
            value = info.get(key)
            if value:
                lines.append(f"{title:<10}: {', '.join(value) if isinstance(value, list) else value}")
        return lines

    def _committed(self, nvf: NVF) -> str:
        tid = index.trove_id(self.repo.db, nvf)
        row = self.repo.db.execute("SELECT committed_at FROM troves WHERE id=?", (tid,)).fetchone()
        return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(row[0])) if row else "?"
