"""``appbuild group-NAME --format F --arch A``: from recipes to images in the store.

For each architecture: cook what changed (skipped when ``--version`` pins an earlier
group version), resolve the group (or take the pinned version), assemble the raw
disk, convert it to every requested format in parallel, and move the results into the
image store. Output names and the store are checked before any work starts; all work
happens in a temporary directory inside the store, so an interrupted or failed build
leaves nothing under a final name.
"""

from __future__ import annotations

import re
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from appbuilder.arch import get_arch
from appbuilder.errors import AppbuildError, Interrupted
from appbuilder.images.meta import ImageMeta
from appbuilder.images.store import ImageStore
from appbuilder.repository.repo import Repository
from appbuilder.settings import Settings

_SIZE_RE = re.compile(r"^(\d+)([MG])i?B?$", re.IGNORECASE)


def parse_size(text: str) -> int:
    """``512M``, ``2G`` (binary units) → bytes."""
    m = _SIZE_RE.match(text.strip())
    if not m:
        raise AppbuildError(f"bad size {text!r}: use a number of MiB or GiB, e.g. 512M or 2G")
    return int(m.group(1)) << (20 if m.group(2).upper() == "M" else 30)


@dataclass
class BuildRequest:
    group: str
    arches: list[str]
    formats: str = "raw"
    version: str | None = None
    output: Path | None = None
    force: bool = False
    size: int | None = None
    jobs: int = 2
    cook: bool = True


@dataclass
class BuiltImage:
    arch: str
    group: str  # name=version[flavor]
    directory: Path
    files: dict[str, list[Path]] = field(default_factory=dict)
    meta: ImageMeta | None = None
    kernel: str = ""
    installed_size: int = 0
    seconds: dict[str, float] = field(default_factory=dict)


def build_images(settings: Settings, repo: Repository, req: BuildRequest,
                 say: Callable[[str], None] = print) -> list[BuiltImage]:
    from appbuilder.images.formats import resolve_formats

    arches = [get_arch(a).name for a in req.arches]
    plans = {arch: resolve_formats(req.formats, arch) for arch in arches}  # bad names fail before any work
    store = ImageStore(req.output or settings.images)
    built = []
    for arch in arches:
        built.append(_build_one(settings, repo, req, arch, plans[arch], store, say))
    return built


def _build_one(settings: Settings, repo: Repository, req: BuildRequest, arch: str, formats: list,
               store: ImageStore, say: Callable[[str], None]) -> BuiltImage:
    from appbuilder.assemble.image import assemble_raw
    from appbuilder.graph.groups import find_group, resolve_group, staged_troves
    from appbuilder.images.formats import convert_all

    timings: dict[str, float] = {}
    t0 = time.monotonic()
    if req.version is None:
        if req.cook and settings.recipes_dir.is_dir():
            _cook_changed(settings, repo, arch, say)
        timings["cook"] = time.monotonic() - t0
        result = resolve_group(settings, repo, req.group, arch)
        group = result.group
        say(f"[{arch}] {group.nvf}" + (" (new)" if result.new else " (unchanged closure)"))
    else:
        group = repo.get(find_group(repo, req.group, arch, req.version), with_files=False)
        say(f"[{arch}] rebuilding {group.nvf} from its pins")
    timings["resolve"] = time.monotonic() - t0 - timings.get("cook", 0)
    if not group.info.get("image_group"):
        raise AppbuildError(f"{req.group} is not an image group (set imageGroup = True in its recipe)")

    directory = req.output or store.directory(req.group, group.version.revision, arch)
    basename = f"{group.name}-{group.version.revision}-{arch}"
    names = [n for spec in formats for n in spec.outputs(basename)]
    store.check_free(directory, names, force=req.force)

    work = store.scratch()
    try:
        t = time.monotonic()
        troves = staged_troves(repo, group)
        fallback_epoch = int(settings.config.get("source_date_epoch", 0))
        assembled = assemble_raw(repo, group, troves, {"group": req.group, "source_date_epoch": fallback_epoch}, work,
                                 size=req.size, progress=lambda m: say(f"[{arch}] {m}"))
        timings["assemble"] = time.monotonic() - t
        t = time.monotonic()
        out = work / "out"
        out.mkdir()
        produced = convert_all(assembled.raw, [f.name for f in formats], out, assembled.meta, jobs=req.jobs,
                               progress=lambda m: say(f"[{arch}] {m}"))
        timings["convert"] = time.monotonic() - t
        # formats may share a file (raw and ami: the same disk)
        unique = list(dict.fromkeys(p for paths in produced.values() for p in paths))
        placed = store.commit(unique, directory, force=req.force)
        by_name = {p.name: p for p in placed}
        files = {fmt: [by_name[p.name] for p in paths] for fmt, paths in produced.items()}
        return BuiltImage(arch, str(group.nvf), directory, files, assembled.meta, assembled.kernel_version,
                          assembled.installed_size, timings)
    except KeyboardInterrupt:
        raise Interrupted(f"interrupted while building {req.group} for {arch}; no image was written") from None
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _cook_changed(settings: Settings, repo: Repository, arch: str, say: Callable[[str], None]) -> None:
    """Cook every recipe whose inputs changed, for *arch* (unchanged ones are skipped)."""
    import os

    from appbuilder.build.batch import cook_all, summary_error
    from appbuilder.build.cook import Cooker, CookOptions
    from appbuilder.recipe.loader import find_recipes

    cooker = Cooker(settings, repo)
    recipes = find_recipes(settings.recipes_dir)

    def report(res) -> None:
        if not res.skipped:
            say(f"[{arch}] cooked {res.nvf} in {res.seconds:.1f} s")

    result = cook_all(cooker, recipes, [get_arch(arch)], jobs=2,
                      options=lambda a: CookOptions(arch=a, make_jobs=os.cpu_count() or 2), report=report)
    error = summary_error(result)
    if error:
        raise error
