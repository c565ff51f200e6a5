"""Reading many upstream packages at once, in worker processes.

Reading a package (its payload decompressed, each member hashed and compressed into the
content store, its ELF files parsed) is mostly Python work: threads would take turns on
one processor. :func:`read_packages` reads several at once in processes, one per
processor this process may use (:func:`appbuilder.core.cpus.usable_cpus`); with one, or
one package, it reads them here, one after the other.

The workers are forked from this process when the reading starts, before this step
starts threads of its own, and start their own content writers; a process that may not
have children (a Dask worker's daemon process) reads here. The workers write contents
into the same content store (each object under a temporary name, then renamed: two
writers of one object leave one whole object) and send back each
:class:`~appbuilder.capsule.model.Capsule`; they commit nothing. The first package, in
the order given, whose reading failed raises its error here as the reader raised it; a
worker that died (killed, out of memory) is a :class:`~appbuilder.capsule.model.CapsuleError`
naming the packages not read (which one it was reading, the pool cannot tell). Interrupting the command (Ctrl-C) interrupts this process only: the
reads under way finish, no new one starts.
"""

from __future__ import annotations

import multiprocessing
import signal
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Callable, Iterable

from appbuilder.capsule.model import Capsule, CapsuleError
from appbuilder.capsule.payload import ContentWriter
from appbuilder.core.cpus import usable_cpus
from appbuilder.repository.store import ContentStore

WRITE_THREADS = 8  # content store writes in flight, per reading process
# reader(path, store, expected_sha256=..., writer=...) -> Capsule: read_deb, read_rpm's partial
Reader = Callable[..., Capsule]


def workers_for(count: int) -> int:
    """How many processes read *count* packages."""
    if multiprocessing.current_process().daemon:
        return 1
    return max(1, min(count, usable_cpus()))


def read_packages(reader: Reader, store: ContentStore, items: Iterable[tuple[Path, str | None]], *,
                  count: int | None = None, sha1s: dict[str, str] | None = None) -> list[Capsule]:
    """``reader(path, store, expected_sha256=sha, writer=...)`` for each (path, sha) of *items*,
    in parallel where it pays (see the module text); the capsules in the order of *items*.
    *items* may be files still arriving (a generator: a download under way), each read as
    soon as it is given; then *count* says how many it gives.
    *sha1s*: a dict that receives the SHA-1 of every content read (sha256 -> SHA-1)."""
    want_sha1 = sha1s is not None
    jobs = workers_for(len(items) if count is None else count)
    if jobs == 1:
        writer = ContentWriter(store, threads=WRITE_THREADS, sha1=want_sha1)
        try:
            return [reader(path, store, expected_sha256=sha, writer=writer) for path, sha in items]
        finally:
            writer.close()
            if want_sha1:
                sha1s.update(writer.sha1s)
    pool = ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("fork"), initializer=_worker_start)
    futures = []
    try:
        given = []
        for path, sha in items:  # forks the workers at the first
            given.append((path, sha))
            futures.append(pool.submit(_read_one, reader, store, Path(path), sha, want_sha1))
        items = given
        out = []
        for (path, _), future in zip(items, futures):
            try:
                capsule, found = future.result()
            except BrokenProcessPool:
                unread = [Path(p).name for (p, _), f in zip(items, futures) if not _done(f)]
                raise CapsuleError(f"a process reading packages stopped (killed, or out of memory) before "
                                   f"{len(unread)} were read ({', '.join(unread[:8])}"
                                   f"{', ...' if len(unread) > 8 else ''}): nothing was imported") from None
            out.append(capsule)
            if want_sha1:
                sha1s.update(found)
        return out
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _done(future) -> bool:
    """The future holds a capsule (not an error)."""
    return future.done() and not future.cancelled() and future.exception() is None


def _worker_start() -> None:
    # Ctrl-C reaches the whole process group: the command stops the pool; a worker finishes
    # its package rather than printing a traceback
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _read_one(reader: Reader, store: ContentStore, path: Path, sha: str | None,
              sha1: bool) -> tuple[Capsule, dict[str, str] | None]:
    writer = ContentWriter(store, threads=WRITE_THREADS, sha1=sha1)
    try:
        return reader(path, store, expected_sha256=sha, writer=writer), writer.sha1s
    finally:
        writer.close()
