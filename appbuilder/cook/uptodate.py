"""Bring the repository up to date: the one path the command line and the nightly take.

1. **Import what is missing.** When a package ``repo/config.yaml`` lists under
   ``upstream:`` (the toolchain group's packages, the kernels, the libraries recipes
   build against) has no trove for its architecture, ``import upstream`` runs; when all
   are there, nothing is fetched (no network, no apt run). The nightly imports every
   time instead (:func:`import_all`), to pick up upstream updates.
2. **Cook what changed**, in build order, independent recipes in parallel
   (:mod:`appbuilder.cook.batch`); recipes whose inputs did not change are skipped.

Every failed cook is reported with its reason, also in the one error that ends the
run (:func:`failure_summary`), so a user never sees only a name.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from appbuilder.capsule.debapt import DebSpec
from appbuilder.capsule.importer import ImportResult, group_packages, import_upstream
from appbuilder.cook.batch import BatchResult, cook_all
from appbuilder.cook.cook import Cooker, CookOptions, CookResult
from appbuilder.core.arch import Arch, get_arch
from appbuilder.core.cpus import usable_cpus
from appbuilder.core.errors import BuildFailed
from appbuilder.core.settings import Settings
from appbuilder.recipe.loader import RECIPE_FILE, RecipeFile, find_recipes
from appbuilder.repository.repo import Repository

FAILURE_LINES = 40  # lines of each failed cook's message in the summary


@dataclass
class Progress:
    """What a caller wants to hear while the repository is brought up to date."""

    say: Callable[[str], None] = lambda text: None  # imports, notes
    cooked: Callable[[CookResult], None] = lambda result: None  # every cook, skipped ones too
    warn: Callable[[str], None] | None = None
    echo: Callable[[str], None] | None = None  # build output, line by line


@dataclass
class UpToDate:
    imported: list[ImportResult] = field(default_factory=list)
    cooks: BatchResult = field(default_factory=BatchResult)


def missing_upstream(settings: Settings, repo: Repository) -> list[str]:
    """The packages ``upstream:`` lists that the repository has no trove of (for their
    architecture). An rpm-md entry without ``only:`` counts as present once the
    repository holds any RPM capsule."""
    upstream = settings.get("upstream")
    missing = []
    for entry in upstream.get("deb") or []:
        names = [str(p) for p in entry.get("packages") or []]
        if entry.get("group"):
            names += group_packages(settings, str(entry["group"]))
        for text in names:
            spec = DebSpec.parse(text)
            arch = get_arch(spec.arch).name if spec.arch != "all" else None
            if not repo.versions(spec.name, arch=arch):
                missing.append(str(spec))
    for entry in upstream.get("rpm") or []:
        only = entry.get("only") or []
        if not only and not any(repo.get(n, with_files=False).info.get("capsule") == "rpm" for n in repo.packages()):
            missing.append(f"the packages of {entry['repo']}")
        missing += [f"{name} (from {entry['repo']})" for name in only if not repo.versions(name.rsplit(".", 1)[0])]
    return missing


def import_missing(settings: Settings, repo: Repository, progress: Progress, *,
                   before: Callable[[], object] | None = None) -> list[ImportResult]:
    """Import upstream packages when any listed one is missing (see the module docstring);
    *before* is called first when there is something to import."""
    if not settings.get("upstream"):
        return []
    missing = missing_upstream(settings, repo)
    if not missing:
        return []
    if before is not None:
        before()
    progress.say(f"importing upstream packages: {len(missing)} listed in repo/config.yaml are not in the "
                 f"repository ({', '.join(missing[:5])}{', ...' if len(missing) > 5 else ''})")
    return import_all(settings, repo, progress)


def import_all(settings: Settings, repo: Repository, progress: Progress) -> list[ImportResult]:
    """``appbuild import upstream``: every listed package, no-ops for those present."""
    from appbuilder.capsule.importer import UNCHANGED

    results = import_upstream(settings, repo, warn=progress.warn)
    for result in results:
        if result.status != UNCHANGED:
            progress.say(str(result))
    return results


def cook_changed(settings: Settings, repo: Repository, arches: list[Arch], progress: Progress, *,
                 recipes: list[RecipeFile] | None = None, jobs: int = 1, force: bool = False,
                 keep_work: bool = False) -> BatchResult:
    """Cook *recipes* (default: every recipe of the workspace) for *arches* in build order;
    the result holds what was cooked, what failed (with the reason) and what was not tried."""
    if recipes is None:
        # a workspace of upstream packages only (a Debian system) has no recipe to cook
        has_any = any(settings.recipes_dir.glob(f"*/{RECIPE_FILE}"))
        recipes = find_recipes(settings.recipes_dir) if has_any else []
    cooker = Cooker(settings, repo, warn=progress.warn)
    if recipes:
        # resolved once before the first cook (as on a cluster): each "cooked ... in S s" is
        # that recipe's own cook, and a toolchain that cannot be resolved is said once
        cooker.toolchain()
    make_jobs = usable_cpus()

    def options(arch: Arch) -> CookOptions:
        return CookOptions(arch=arch, force=force, make_jobs=make_jobs, keep_work=keep_work, echo=progress.echo)

    return cook_all(cooker, recipes, arches, jobs=jobs, options=options, report=progress.cooked)


def bring_up_to_date(settings: Settings, repo: Repository, arches: list[Arch], progress: Progress, *,
                     recipes: list[RecipeFile] | None = None, jobs: int = 1, force: bool = False,
                     keep_work: bool = False) -> UpToDate:
    """Import what is missing, then cook what changed; raises :func:`failure_summary`'s
    error when a cook failed (after every independent cook was tried)."""
    imported = import_missing(settings, repo, progress)
    cooks = cook_changed(settings, repo, arches, progress, recipes=recipes, jobs=jobs, force=force,
                         keep_work=keep_work)
    error = failure_summary(cooks)
    if error:
        raise error
    return UpToDate(imported, cooks)


def failure_summary(result: BatchResult) -> BuildFailed | None:
    """One error naming every failed cook with its reason, and what was not attempted
    because of it; None when all went well."""
    if not result.failed:
        return None
    lines = [f"{len(result.failed)} cook(s) failed:"]
    for who, reason in result.failed.items():
        text = reason.splitlines()
        if len(text) > FAILURE_LINES:
            text = text[:FAILURE_LINES] + [f"... ({len(text) - FAILURE_LINES} more lines)"]
        lines.append(f"  {who}:")
        lines += [f"    {line}" for line in text]
    if result.not_attempted:
        lines.append("not attempted because a build requirement failed:")
        lines += [f"  {who}: {why}" for who, why in sorted(result.not_attempted.items())]
    return BuildFailed("\n".join(lines))

