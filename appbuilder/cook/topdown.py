"""Top-down resolution with imports: what ``appbuild group-NAME`` does for a group with
``resolveSources``.

Resolution (:func:`appbuilder.graph.groups.resolve_group`, planning in
:mod:`appbuilder.graph.upstream`) says which upstream packages a group needs; this
module brings them in: one batched, verified download per source
(``UpstreamIndex.fetch``: sha256 and size from the signed index), then the usual
capsule importers (:class:`~appbuilder.capsule.importer.DebImporter`,
:class:`~appbuilder.capsule.importer.RpmImporter`) onto the source's label (``label:``
of the source in ``sources:``, otherwise ``deb.label``/``rpm.label``, otherwise the
repository's label with the source's name as its host: ``debian@cvm:2``), all packages of a round read before the first is committed. Then the
group is resolved again, until a round finds nothing new (at most ``MAX_ROUNDS``), and
committed with every member's reason and index.

``appbuild resolve group-NAME --upstream`` uses :func:`plan_only`: the plan, nothing
imported.
"""

from __future__ import annotations

import re
import time
from collections import defaultdict
from collections.abc import Callable

from appbuilder.core.settings import Settings
from appbuilder.graph.groups import GroupResult, TopDown, resolve_group
from appbuilder.graph.upstream import Pick, UpstreamError
from appbuilder.repository.repo import Repository
from appbuilder.repository.versions import NVF


def topdown(settings: Settings, repo: Repository, *, say: Callable[[str], None] = lambda text: None,
            warn: Callable[[str], None] | None = None) -> TopDown:
    """A :class:`TopDown` that imports what the plans pick."""
    state = TopDown(say=say)

    def open_indexes(sources: tuple[str, ...], arch: str) -> list:
        from appbuilder.upstream.index import open_sources

        t = time.monotonic()
        indexes = open_sources(settings, arch, names=list(sources), warn=warn)
        say(f"opened {', '.join(i.describe() for i in indexes)} for {arch} in {time.monotonic() - t:.1f} s")
        return indexes

    def import_picks(picks: list[Pick], arch: str) -> dict[str, NVF]:
        return import_packages(settings, repo, state, picks, arch, say=say, warn=warn)

    state.open_indexes = open_indexes
    state.import_picks = import_picks
    return state


def import_packages(settings: Settings, repo: Repository, state: TopDown, picks: list[Pick], arch: str, *,
                    say: Callable[[str], None] = lambda text: None,
                    warn: Callable[[str], None] | None = None) -> dict[str, NVF]:
    """Download (batched, per source) and import *picks*; the trove of each by its key."""
    from appbuilder.capsule.importer import DebImporter, RpmImporter

    by_source: dict[str, list] = defaultdict(list)
    for pick in picks:
        by_source[pick.package.source].append(pick.package)
    troves: dict[str, NVF] = {}
    for source, packages in sorted(by_source.items()):
        index = state.index_of(source, arch)
        t = time.monotonic()
        label = source_label(settings, repo, index)
        size = sum(p.size for p in packages)
        fetched: list[float] = []  # when the last file came
        if index.kind == "deb":  # each package read as soon as its download is done
            def arriving():
                for i, path in index.fetch_each(packages):
                    yield path, packages[i].sha256
                fetched.append(time.monotonic() - t)
            results = DebImporter(settings, repo, label=label, warn=warn).import_fetched(arriving(), len(packages))
        else:
            paths = index.fetch(packages)
            fetched.append(time.monotonic() - t)
            results = RpmImporter(settings, repo, label=label, warn=warn).import_files(list(paths))
        say(f"fetched {len(packages)} package(s) from {source} ({size / 1e6:.1f} MB) in {fetched[0]:.1f} s, "
            f"imported them by {time.monotonic() - t:.1f} s")
        by_name = {(r.nvf.name, r.nvf.version.upstream): r.nvf for r in results}
        for pkg in packages:
            nvf = by_name.get((pkg.name, pkg.version))
            if nvf is None:
                raise UpstreamError(f"{pkg.location or pkg.name}: the downloaded package is not "
                                    f"{pkg.name} {pkg.version} as {index.describe()} says")
            troves[pkg.key] = nvf
    return troves


def source_label(settings: Settings, repo: Repository, index) -> str:
    """The label a source's packages are committed to: its ``label:`` in ``sources:``,
    else ``deb.label``/``rpm.label``, else the repository's label with the source's name
    as the host (``cernvm@cvm:2`` -> ``debian@cvm:2``), so a Debian package never takes
    the place of a cooked one of the same name (``base-files``) in other groups."""
    label = getattr(index, "label", None) or settings.get(f"{index.kind}.label")
    if label:
        return label
    rest = repo.label.partition("@")[2]
    return f"{re.sub(r'[^A-Za-z0-9._-]', '-', index.source)}@{rest}"


def resolve_topdown(settings: Settings, repo: Repository, name: str, arch: str, *,
                    say: Callable[[str], None] = lambda text: None,
                    warn: Callable[[str], None] | None = None) -> GroupResult:
    """Resolve and commit a group, importing what a group with ``resolveSources`` needs
    (a group without it resolves exactly as :func:`resolve_group` alone)."""
    return resolve_group(settings, repo, name, arch, upstream=topdown(settings, repo, say=say, warn=warn))


def plan_only(settings: Settings, repo: Repository, name: str, arch: str, *,
              say: Callable[[str], None] = lambda text: None) -> GroupResult:
    """The upstream plan of a group: nothing imported, nothing committed (when the
    repository already holds everything, the group resolves without being recorded)."""
    state = topdown(settings, repo, say=say)
    state.import_picks = None
    return resolve_group(settings, repo, name, arch, commit=False, upstream=state)
