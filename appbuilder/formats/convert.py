"""From one raw disk to every requested output format, in parallel and all-or-nothing.

:func:`convert_all` plans the work from the formats (:mod:`appbuilder.formats.specs`) and
leaves everything particular to a family to its class (:mod:`appbuilder.formats.families`):

1. one *conversion* per distinct disk (``vmdk-esx`` and ``ova`` share their
   streamOptimized VMDK, ``raw`` and ``ami`` their raw copy), run at the same time:
   ``qemu-img convert`` processes, a sparse ``cp`` for the raw copy, and for the
   streamOptimized VMDK appbuild's own writer, which deflates on ``jobs`` threads
   (:mod:`appbuilder.formats.vmdkstream`; qemu-img would use one core): whatever the
   family's ``make_disk`` does. Compressing conversions (the family says which:
   ``heavy``) are started first and at most ``jobs`` of them run at once; the cheap,
   I/O-bound ones run beside them, two at a time.
2. each disk is made reproducible in place by its family (VMDK descriptor CID and
   extent name, VHD footer timestamp/unique id/checksum; qcow2 needs nothing as long
   as writes are in order, which is why ``-W`` is never used: it makes compressed qcow2
   differ from run to run) and verified by it (``qemu-img info`` format, subformat and
   virtual size, ``qemu-img check`` where the format has checks, the VHD footer).
3. per format, its descriptors are rendered (templates from the workspace's
   ``formats/``, then the package's) and the family packs what else it leaves (the
   OVA's tar).

Everything is written into a hidden temporary directory inside ``out_dir`` and moved
to its final name only when every requested format is complete and verified. A
failure or Ctrl-C stops the other conversions (their qemu-img processes are
terminated), removes the temporary directory and leaves the final names untouched.
"""

from __future__ import annotations

import os
import shutil
import signal
import tempfile
import threading
import time
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

from appbuilder.assemble.meta import ImageMeta
from appbuilder.core.cpus import usable_cpus
from appbuilder.core.errors import AppbuildError, Interrupted
from appbuilder.core.fileio import sha256_file
from appbuilder.formats import qemu
from appbuilder.formats.descriptors import FileInfo, render
from appbuilder.formats.families.base import DiskJob, Format
from appbuilder.formats.specs import resolve_formats, template_dirs

MIB = 1 << 20
IO_SLOTS = 2  # cheap conversions running beside the compressing ones

Progress = Callable[[str], None]


class OutputExists(AppbuildError):
    """An output file is already there and --force was not given."""


@dataclass
class Conversion:
    """One disk to make from the raw disk (possibly shared by several formats)."""

    name: str  # final file name of the disk
    format: Format  # the first format asking for it (the others make it the same way)
    tmp: Path
    formats: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def heavy(self) -> bool:
        return self.format.heavy


@dataclass
class Plan:
    """What one call of :func:`convert_all` will write."""

    specs: list[Format]
    conversions: dict[str, Conversion]  # by disk file name
    outputs: dict[str, list[str]]  # format name -> final file names
    work: Path
    lock: threading.Lock = field(default_factory=threading.Lock)
    hashes: dict[Path, Future] = field(default_factory=dict)  # sha256 of temporary files, computed once

    @property
    def final_names(self) -> list[str]:
        seen: dict[str, None] = {}
        for names in self.outputs.values():
            seen.update(dict.fromkeys(names))
        return list(seen)


def convert_all(
    raw: Path,
    names: str | Iterable[str],
    out_dir: Path,
    meta: ImageMeta,
    *,
    jobs: int | None = None,
    force: bool = False,
    progress: Progress | None = None,
    formats_dir: Path | None = None,
    timings: dict | None = None,
) -> dict[str, list[Path]]:
    """Convert the raw disk *raw* into every format in *names*; {format: [files]}.

    *names* is ``"qcow2,vhd"``, a list of names, or ``"all"`` (every format offered for
    ``meta.arch``). *jobs* caps the compressing conversions running at once (default:
    one per CPU). Outputs that exist are refused unless *force*. *progress* receives one
    line per step. *formats_dir* is the workspace's ``formats/`` (``Settings.formats_dir``),
    whose formats and templates replace or add to the packaged ones. *timings*, if given,
    is filled with seconds per conversion and total.
    """
    t_start = time.monotonic()
    say = progress or (lambda line: None)
    formats_dir = Path(formats_dir) if formats_dir is not None else None
    raw, out_dir = Path(raw), Path(out_dir)
    specs = resolve_formats(names, meta.arch, formats_dir)
    _check_raw(raw, meta)
    out_dir.mkdir(parents=True, exist_ok=True)
    _refuse_existing(specs, out_dir, meta, force)
    jobs = max(1, jobs or usable_cpus())

    work = Path(tempfile.mkdtemp(prefix=".appbuild-convert-", dir=out_dir))
    try:
        plan = _plan(specs, meta, work)
        runner = qemu.Processes()
        try:
            _run(plan, raw, meta, template_dirs(formats_dir), runner, jobs, say)
        except KeyboardInterrupt:
            runner.stop()
            raise Interrupted("interrupted: conversions stopped, no image was written") from None
        except BaseException:
            runner.stop()
            raise
        with _sigint_deferred():
            for name in plan.final_names:
                os.replace(work / name, out_dir / name)
        result = {spec.name: [out_dir / n for n in plan.outputs[spec.name]] for spec in specs}
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if timings is not None:
        timings.update({c.name: c.seconds for c in plan.conversions.values()})
        timings["total"] = time.monotonic() - t_start
    say(f"wrote {len(plan.final_names)} files for {', '.join(s.name for s in specs)} "
        f"in {time.monotonic() - t_start:.1f} s")
    return result


# ---------------------------------------------------------------- planning


def _check_raw(raw: Path, meta: ImageMeta) -> None:
    if not raw.is_file():
        raise AppbuildError(f"no raw disk at {raw}")
    size = raw.stat().st_size
    if size != meta.disk_size:
        raise AppbuildError(f"{raw} is {size} bytes but the image metadata says {meta.disk_size}")
    if size % MIB:
        raise AppbuildError(f"{raw} is {size} bytes, not a whole number of MiB (VHD for Azure needs that)")


def _refuse_existing(specs: list[Format], out_dir: Path, meta: ImageMeta, force: bool) -> None:
    if force:
        return
    existing = sorted({n for s in specs for n in s.outputs(meta.basename) if (out_dir / n).exists()})
    if existing:
        raise OutputExists(f"{len(existing)} output file(s) already exist in {out_dir}: {', '.join(existing)} "
                           "(use --force to replace them)")


def _plan(specs: list[Format], meta: ImageMeta, work: Path) -> Plan:
    conversions: dict[str, Conversion] = {}
    outputs: dict[str, list[str]] = {}
    for spec in specs:
        name = spec.disk_name(meta.basename)
        conv = conversions.setdefault(name, Conversion(name, spec, work / name))
        conv.formats.append(spec.name)
        outputs[spec.name] = spec.outputs(meta.basename)
    return Plan(specs, conversions, outputs, work)


# ---------------------------------------------------------------- running


def _run(plan: Plan, raw: Path, meta: ImageMeta, templates: tuple[Path, ...], runner: qemu.Processes, jobs: int,
         say: Progress) -> None:
    heavy = threading.BoundedSemaphore(jobs)
    light = threading.BoundedSemaphore(min(IO_SLOTS, jobs))
    convs = sorted(plan.conversions.values(), key=lambda c: not c.heavy)  # compressing ones first
    workers = len(convs) + len(plan.specs) + 1
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="convert") as pool:
        raw_sha = pool.submit(sha256_file, raw, runner.stopped) if _needs_raw_hash(plan) else None
        done: dict[str, Future] = {}
        for conv in convs:
            slot = heavy if conv.heavy else light
            done[conv.name] = pool.submit(_convert_one, conv, raw, meta, runner, slot, jobs, say)
        finishers = [pool.submit(_finish_format, spec, plan, meta, templates, done, raw_sha, runner, say)
                     for spec in plan.specs]
        futures = [*done.values(), *finishers] + ([raw_sha] if raw_sha else [])
        try:
            pending = set(futures)
            while pending:  # short waits keep the main thread responsive to Ctrl-C
                finished, pending = wait(pending, timeout=0.25, return_when=FIRST_EXCEPTION)
                for fut in finished:
                    if fut.exception() is not None:
                        raise _first_error(futures)
        except BaseException:
            runner.stop()
            for fut in futures:
                fut.cancel()
            raise


def _first_error(futures: list[Future]) -> BaseException:
    """The first real failure (not the Cancelled of the conversions stopped after it)."""
    errors = [f.exception() for f in futures if f.done() and not f.cancelled() and f.exception() is not None]
    real = [e for e in errors if not isinstance(e, (qemu.Cancelled, InterruptedError))]
    return (real or errors)[0]


def _needs_raw_hash(plan: Plan) -> bool:
    """The raw disk's sha256 is needed (a descriptor describes a copy of it: the AMI manifest)."""
    return any(spec.descriptors and spec.copies_raw for spec in plan.specs)


def _convert_one(conv: Conversion, raw: Path, meta: ImageMeta, runner: qemu.Processes,
                 slot: threading.BoundedSemaphore, jobs: int, say: Progress) -> Conversion:
    """Make, fix up and check one disk: each step is the family's."""
    fmt = conv.format
    job = DiskJob(raw=raw, dest=conv.tmp, name=conv.name, meta=meta, runner=runner, jobs=jobs)
    with slot:
        if runner.stopped.is_set():
            raise qemu.Cancelled(f"{conv.name}: stopped")
        say(f"{conv.name}: converting ({fmt.label})")
        t0 = time.monotonic()
        fmt.make_disk(job)
        fmt.make_reproducible(job)
        fmt.verify(job)
        conv.seconds = time.monotonic() - t0
    size = conv.tmp.stat().st_size
    say(f"{conv.name}: done in {conv.seconds:.1f} s ({size / MIB:.1f} MiB, {_allocated(conv.tmp) / MIB:.1f} MiB allocated)")
    return conv


def _allocated(path: Path) -> int:
    return path.stat().st_blocks * 512


def _finish_format(spec: Format, plan: Plan, meta: ImageMeta, templates: tuple[Path, ...], done: dict[str, Future],
                   raw_sha: Future | None, runner: qemu.Processes, say: Progress) -> None:
    """Render the descriptors of *spec* and let its family pack what it packs, once its disk is ready."""
    disk_name = spec.disk_name(meta.basename)
    conv: Conversion = done[disk_name].result()
    hash_of = (lambda: raw_sha.result()) if (raw_sha is not None and conv.format.copies_raw) else \
        (lambda: _shared_sha256(plan, conv.tmp, runner.stopped))
    disk = FileInfo(disk_name, conv.tmp, hash_of)
    files: list[FileInfo] = []
    tvars = spec.template_vars(meta.arch)
    for d in spec.descriptors:
        name = d.file.format(basename=meta.basename)
        text = render(templates, d.template, meta=meta, vars=tvars, spec=spec, disk=disk, files=list(files),
                      manifest_files=[*files, disk])
        target = plan.work / name
        _write_once(plan, target, text)
        files.append(FileInfo(name, target))
    spec.pack(plan.work, {disk_name: conv.tmp, **{f.name: f.path for f in files}}, meta, runner, say)


def _write_once(plan: Plan, target: Path, text: str) -> None:
    """Write a descriptor; two formats sharing it (vmdk-esx, ova) must render the same text."""
    with plan.lock:
        if target.exists():
            if target.read_text() != text:
                raise AppbuildError(f"two formats render {target.name} differently")
            return
        target.write_text(text)


def _shared_sha256(plan: Plan, path: Path, stop: threading.Event) -> str:
    """sha256 of a finished temporary disk, computed once however many formats ask."""
    with plan.lock:
        fut = plan.hashes.get(path)
        mine = fut is None
        if mine:
            fut = plan.hashes[path] = Future()
    if mine:
        try:
            fut.set_result(sha256_file(path, stop))
        except BaseException as exc:
            fut.set_exception(exc)
    return fut.result()


@contextmanager
def _sigint_deferred():
    """Hold Ctrl-C back for the few renames that put the outputs in place."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught = []
    previous = signal.signal(signal.SIGINT, lambda *a: caught.append(a))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        if caught:
            raise KeyboardInterrupt
