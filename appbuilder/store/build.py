"""``appbuild group-NAME --format F --arch A``: from recipes to images in the store.

For each architecture: cook what changed (skipped when ``--version`` pins an earlier
group version), resolve the group (or take the pinned version), assemble the raw
disk, convert it to every requested format in parallel, and move the results into the
image store. Output names and the store are checked before any work starts; all work
happens in a temporary directory inside the store, so an interrupted or failed build
leaves nothing under a final name.

Every build into the store is recorded: ``manifest.json`` (the group trove and its
pins, formats, sha256 and size of every file, builder version, times) and ``build.log``
(this build's progress lines) beside the images, with the build's provenance
(``NAME.provenance.json``: an in-toto statement with a SLSA provenance predicate naming
the images, the pins, recipes, sources and toolchain, see ``provenance.py``; a build with
``--output`` writes it there too) and the image's SBOMs (``NAME.spdx.json``,
``NAME.cdx.json``: the very files the image carries in ``/usr/share/appbuild/``, see
``assemble/sbom.py``). When the store already records the group version being built, the new files must have the recorded sha256, or the build
fails and the store keeps what it had: a version rebuilt from its pins is the very image
first built (and published), not merely a similar one.
"""

from __future__ import annotations

import shutil
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from appbuilder.assemble.meta import ImageMeta
from appbuilder.core.arch import get_arch
from appbuilder.core.errors import AppbuildError, Interrupted
from appbuilder.core.settings import Settings
from appbuilder.core.settings import parse_size as settings_size
from appbuilder.repository import sha1s
from appbuilder.repository.repo import Repository
from appbuilder.core.background import wait_until_finished
from appbuilder.core.fileio import write_atomic
from appbuilder.store import manifest as mf
from appbuilder.store import provenance
from appbuilder.store.images import ImageStore


def parse_size(text: str) -> int:
    """A disk size: ``512M``, ``2G`` (binary units), a whole number of MiB."""
    try:
        size = settings_size(text)
    except ValueError as exc:
        raise AppbuildError(f"bad size {text!r}: {exc}; e.g. 512M or 2G") from None
    if size % (1 << 20):
        raise AppbuildError(f"bad size {text!r}: a disk is a whole number of MiB, e.g. 512M or 2G")
    return size


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
    boot: str = "disk"  # "network": the small image that boots its OS from an fs repository


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
    manifest: mf.Manifest | None = None  # as recorded in the store (None with --output)


def build_images(settings: Settings, repo: Repository, req: BuildRequest,
                 say: Callable[[str], None] = print) -> list[BuiltImage]:
    from appbuilder.formats.specs import resolve_formats
    from appbuilder.formats.targets import load_targets

    arches = [get_arch(a).name for a in req.arches]
    plans = {arch: resolve_formats(req.formats, arch, settings.formats_dir)  # bad names fail before any work
             for arch in arches}
    table = load_targets(settings.formats_dir)  # and so does a broken device table
    store = ImageStore(req.output or settings.images)
    built = []
    for arch in arches:
        built.append(_build_one(settings, repo, req, arch, plans[arch], table, store, say))
    return built


def _by_targets(table, formats: list, arch: str, basename: str) -> list[list]:
    """*formats* in batches made for the same targets (the device table's ``formats:``); formats
    that write the same file (raw and ami: one disk) stay in one batch, for all their targets."""
    batches: list[tuple[set, list, set]] = []  # (target names, formats, output names)
    for spec in formats:
        targets = {t.name for t in table.targets_of(spec, arch)}
        outputs = set(spec.outputs(basename))
        for names, specs, files in batches:
            if names == targets or files & outputs:
                names |= targets
                specs.append(spec)
                files |= outputs
                break
        else:
            batches.append((targets, [spec], outputs))
    return [specs for _, specs, _ in batches]


def os_repository(settings: Settings, group: str, arch: str) -> str:
    """The fs repository of *group*'s OS for *arch* (the ``os.repository`` setting, expanded)."""
    return settings.get("os.repository").replace("{group}", group).replace("{arch}", arch)


def os_key(settings: Settings, repository: str, suffix: str) -> Path:
    """The key file of *repository* in the ``os.keys`` directory (suffix ``.key`` or ``.pub``)."""
    keys = Path(settings.get("os.keys"))
    keys = keys if keys.is_absolute() else settings.workspace / keys
    return keys / f"{repository}{suffix}"


def netboot_config(settings: Settings, group: str, arch: str):
    """Where a network-booting image of *group* for *arch* takes its OS from (the os.* settings)."""
    from appbuilder.assemble.netboot import NetbootConfig

    repository = os_repository(settings, group, arch)
    servers = settings.get("os.servers")
    if not servers:
        raise AppbuildError("a network-booting image needs the servers of its OS: set os.servers in repo/config.yaml "
                            "or give --os-server URL (e.g. http://cvmfs.example.org/cvmfs/@fqrn@)")
    return NetbootConfig(repository, servers, os_key(settings, repository, ".pub"), proxy=settings.get("os.proxy"),
                         data_size=settings.get("os.data_size"))


def device_modules(settings: Settings, arch: str):
    """The device drivers an image for *arch* keeps (:class:`appbuilder.assemble.kernel.DeviceModules`):
    every target's in the device table (the workspace's ``formats/targets.yaml`` or the packaged one)."""
    from appbuilder.formats.targets import load_targets

    return load_targets(settings.formats_dir).device_modules(arch)


def _build_one(settings: Settings, repo: Repository, req: BuildRequest, arch: str, formats: list, table,
               store: ImageStore, say: Callable[[str], None]) -> BuiltImage:
    from appbuilder.assemble.image import assemble_raw
    from appbuilder.formats.convert import convert_all
    from appbuilder.cook.topdown import resolve_topdown
    from appbuilder.graph.groups import staged_troves

    timings: dict[str, float] = {}
    t0 = time.monotonic()
    log: list[str] = []
    started = mf.utc_now()
    user_say = say

    def say(message: str) -> None:  # progress for the user, and the build's log
        log.append(f"[{time.monotonic() - t0:7.1f}s] {message}")
        user_say(message)

    if req.version is None:
        if req.cook and settings.recipes_dir.is_dir():
            _cook_changed(settings, repo, arch, say)
        timings["cook"] = time.monotonic() - t0
        result = resolve_topdown(settings, repo, req.group, arch, say=lambda m: say(f"[{arch}] {m}"))
        group = result.group
        say(f"[{arch}] {group.nvf}" + (" (new)" if result.new else " (unchanged closure)"))
    else:
        group = repo.get(_pinned_group(settings, repo, req, arch, say, timings), with_files=False)
        say(f"[{arch}] rebuilding {group.nvf} from its pins")
    timings["resolve"] = time.monotonic() - t0 - timings.get("cook", 0)
    if not group.info.get("image_group"):
        raise AppbuildError(f"{req.group} is not an image group (set imageGroup = True in its recipe)")

    network = req.boot == "network"  # recorded beside the classic images of the version, in their own directory
    directory = req.output or store.directory(req.group, group.version.revision, arch, network=network)
    basename = f"{group.name}-{group.version.revision}-{arch}" + ("-network" if network else "")
    names = [n for spec in formats for n in spec.outputs(basename)]
    store.check_free(directory, names, force=req.force)

    work = store.scratch()
    try:
        t = time.monotonic()
        troves = staged_troves(repo, group)
        fallback_epoch = settings.get("source_date_epoch")
        meta_base = {"group": req.group, "source_date_epoch": fallback_epoch,
                     "scripts_timeout": settings.get("scripts.timeout"), "scripts_cache": settings.cache / "scripts",
                     "rootfs_cache": settings.cache / "rootfs", "rootfs_keep": settings.get("cache.root_filesystems"),
                     "sha1_cache": sha1s.cache_file(settings.cache)}
        out = work / "out"
        out.mkdir()
        produced: dict[str, list[Path]] = {}
        timings["assemble"] = timings["convert"] = 0.0
        # a classic image: one raw disk with every target's drivers is the source of every format;
        # a network-booting one: a disk per set of targets, each with only its targets' drivers
        if network:
            from appbuilder.assemble.netboot import assemble_netboot, os_sboms

            sboms = os_sboms(repo, group, troves, meta_base)
        for batch in (_by_targets(table, formats, arch, basename) if network else [formats]):
            t = time.monotonic()
            if network:
                scratch = work / f"disk-{len(produced)}"
                scratch.mkdir()
                assembled = assemble_netboot(repo, group, troves, meta_base, scratch,
                                             devices=table.device_modules_for(batch, arch),
                                             config=netboot_config(settings, req.group, arch), sboms=sboms,
                                             size=req.size, progress=lambda m: say(f"[{arch}] {m}"))
            else:
                assembled = assemble_raw(repo, group, troves, meta_base, work, devices=table.device_modules(arch),
                                         size=req.size, progress=lambda m: say(f"[{arch}] {m}"),
                                         script_log=log.append)  # package scripts' output: the build log only
            for warning in table.unserved(batch, arch, assembled.missing_modules):
                say(f"[{arch}] warning: {warning}")
            timings["assemble"] += time.monotonic() - t
            t = time.monotonic()
            produced.update(convert_all(assembled.raw, [f.name for f in batch], out, assembled.meta, jobs=req.jobs,
                                        progress=lambda m: say(f"[{arch}] {m}"), formats_dir=settings.formats_dir))
            timings["convert"] += time.monotonic() - t
        # formats may share a file (raw and ami: the same disk)
        unique = list(dict.fromkeys(p for paths in produced.values() for p in paths))
        sboms = _write_sboms(out, basename, assembled.sboms)
        # the files' sha256 on a thread (hashing leaves the interpreter free) while the
        # provenance's materials are read from the repository, before any file is placed
        with ThreadPoolExecutor(1, thread_name_prefix="hash") as pool:
            hashing = pool.submit(mf.file_records, unique + sboms)
            resolved = provenance.materials(settings, repo, group, troves)
            records = hashing.result()
        _check_recorded(settings, req, group, arch, records)
        placed = store.commit(unique, directory, force=req.force)
        store.commit(sboms, directory, force=True)  # a recorded SBOM was just checked to be these very bytes
        by_name = {p.name: p for p in placed}
        files = {fmt: [by_name[p.name] for p in paths] for fmt, paths in produced.items()}
        recorded = None
        manifest = _manifest(group, req.group, arch, assembled, produced, records, timings, started)
        manifest.sboms = [p.name for p in sboms]
        manifest.provenance = provenance.file_name(basename)
        say(f"[{arch}] provenance: {len(resolved)} materials in {manifest.provenance}")
        if req.output is None:
            say(f"[{arch}] recorded {directory / mf.MANIFEST}")
            # the statement covers every image the directory then holds (earlier builds' formats too)
            recorded = store.record(directory, manifest, [_log_header(manifest, started), *log], documents=lambda m: {
                m.provenance: provenance.render(provenance.statement(m, resolved, size=req.size))})
        else:
            write_atomic(directory / manifest.provenance,
                         provenance.render(provenance.statement(manifest, resolved, size=req.size)))
        for error in wait_until_finished():  # the staged tree removed, the partition kept in the cache
            say(f"[{arch}] warning: {error}")
        return BuiltImage(arch, str(group.nvf), directory, files, assembled.meta, assembled.kernel_version,
                          assembled.installed_size, timings, recorded)
    except KeyboardInterrupt:
        raise Interrupted(f"interrupted while building {req.group} for {arch}; no image was written") from None
    finally:
        wait_until_finished()
        shutil.rmtree(work, ignore_errors=True)


def _write_sboms(out: Path, basename: str, sboms: dict[str, bytes]) -> list[Path]:
    """The image's SBOMs (the ones it carries in /usr/share/appbuild/) as ``BASENAME.spdx.json``
    and ``BASENAME.cdx.json``, to go beside the images."""
    paths = []
    for suffix, data in sorted(sboms.items()):
        path = out / f"{basename}{suffix}"
        path.write_bytes(data)
        paths.append(path)
    return paths


def _pinned_group(settings: Settings, repo: Repository, req: BuildRequest, arch: str, say: Callable[[str], None],
                  timings: dict[str, float]):
    """The group trove ``--version`` names: the repository's, or else one restored from the pins
    the image store recorded for that version (after importing and cooking what is missing,
    so a workspace rebuilt from nothing can make the very image again)."""
    from appbuilder.core.errors import RepositoryError
    from appbuilder.graph.groups import find_group
    from appbuilder.repository.trove import GROUP
    from appbuilder.repository.versions import NVF, TroveSpec

    try:
        return find_group(repo, req.group, arch, req.version)
    except RepositoryError:
        pass
    store = ImageStore(settings.images)
    try:
        stored = store.find(req.group, req.version, arch)[0]
    except AppbuildError as exc:
        known = [str(n.version.revision) for n in repo.find(TroveSpec(req.group), arch=arch)
                 if repo.get(n, with_files=False).kind == GROUP]
        in_repo = f"; the repository has {', '.join(known)}" if known else ""
        raise AppbuildError(f"neither the repository nor the image store records {req.group}={req.version} for "
                            f"{arch}: the store says: {exc}{in_repo}. Build a new version with "
                            f"'appbuild {req.group}' (without --version)") from None
    record = stored.manifest
    where = stored.directory / mf.MANIFEST
    if not record.group_info or not record.members:
        raise AppbuildError(f"{where} records no group settings (written by an older appbuild): "
                            f"{req.group}={req.version} cannot be rebuilt from it")
    try:
        nvf = NVF.parse(record.trove)
        members = [NVF.parse(m) for m in record.members]
    except AppbuildError as exc:
        raise AppbuildError(f"{where}: {exc}") from None
    say(f"[{arch}] the repository has no {nvf}: restoring it from the pins in {where}")
    if req.cook and settings.recipes_dir.is_dir():
        t = time.monotonic()
        _cook_changed(settings, repo, arch, say)
        timings["cook"] = time.monotonic() - t
    try:
        return repo.restore_group(nvf, members, record.group_info).nvf
    except RepositoryError as exc:
        raise AppbuildError(f"{exc}, even after importing and cooking") from None


def _check_recorded(settings: Settings, req: BuildRequest, group, arch: str, records: dict[str, dict]) -> None:
    """Refuse files that differ from those the image store recorded for this group version."""
    recorded = ImageStore(settings.images).manifest(req.group, group.version.revision, arch)
    if recorded is None or recorded.trove != str(group.nvf):
        return
    bad = mf.mismatches(recorded, records)
    if bad:
        then = recorded.builder
        now = mf.builder_identity()
        note = "" if then == now else f" (recorded by {_who(then)}, now built by {_who(now)})"
        raise AppbuildError(f"{group.nvf} did not rebuild to the bytes recorded in "
                            f"{ImageStore(settings.images).directory(req.group, group.version.revision, arch)}"
                            f"{note}; nothing was written:\n  " + "\n  ".join(bad))


def _who(builder: dict) -> str:
    return f"appbuild {builder.get('version', '?')}" + (f" at {builder['commit'][:12]}" if builder.get("commit") else "")


def _manifest(group, name: str, arch: str, assembled, produced: dict[str, list[Path]], records: dict[str, dict],
              timings: dict[str, float], started: str) -> mf.Manifest:
    now = mf.utc_now()
    formats = {fmt: [p.name for p in paths] for fmt, paths in produced.items()}
    builder = mf.builder_identity()
    return mf.Manifest(
        group=name, trove=str(group.nvf), version=str(group.version), arch=arch,
        members=[str(m) for m in group.members], group_info=dict(group.info), named=list(group.info.get("named", [])),
        formats=formats, files=records, builder=builder, kernel=assembled.kernel_version,
        installed_size=assembled.installed_size, disk_size=assembled.meta.disk_size,
        source_date_epoch=assembled.meta.source_date_epoch, built=now, updated=now,
        devices={"initramfs": list(assembled.initramfs_modules), "root": list(assembled.root_modules),
                 "missing": [{"target": m.target, "module": m.module} for m in assembled.missing_modules]},
        builds=[{"started": started, "finished": now, "formats": sorted(formats), "builder": builder,
                 "seconds": {k: round(v, 2) for k, v in timings.items()}}],
    )


def _log_header(manifest: mf.Manifest, started: str) -> str:
    return (f"== {started} {_who(manifest.builder)}: {manifest.trove}, "
            f"formats {', '.join(sorted(manifest.formats))} ==")


def _cook_changed(settings: Settings, repo: Repository, arch: str, say: Callable[[str], None]) -> None:
    """Bring the repository up to date for *arch*: import what is missing, cook what changed."""
    from appbuilder.cook.uptodate import Progress, bring_up_to_date

    def report(res) -> None:
        if not res.skipped:
            say(f"[{arch}] cooked {res.nvf} in {res.seconds:.1f} s")

    bring_up_to_date(settings, repo, [get_arch(arch)], Progress(say=lambda m: say(f"[{arch}] {m}"), cooked=report),
                     jobs=2)