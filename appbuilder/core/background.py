"""Work started on a thread of its own, its result (or error) collected when it is needed.

The threads are daemon threads: work whose result nobody asked for (the file list of an
upstream index in a command that never asks about files) does not hold up the exit. Work
that must be done before a command ends (removing a staged tree, keeping a partition in
the cache) goes to :func:`finish_soon`, and the command waits for it with
:func:`wait_until_finished` before it cleans up.
"""

from __future__ import annotations

import threading
from concurrent.futures import Future
from typing import Callable, Sequence, TypeVar

T = TypeVar("T")


def later(work: Callable[..., T], *args, name: str = "appbuild-later") -> "Future[T]":
    """``work(*args)`` started on a thread; the future holds its result or its error."""
    future: Future = Future()

    def run() -> None:
        if not future.set_running_or_notify_cancel():
            return
        try:
            result = work(*args)
        except BaseException as exc:  # noqa: BLE001 - handed to whoever asks for the result
            future.set_exception(exc)
        else:
            future.set_result(result)

    threading.Thread(target=run, name=name, daemon=True).start()
    return future


_finishing: list[Future] = []
_finishing_lock = threading.Lock()


def finish_soon(work: Callable[..., object], *args, name: str = "appbuild-finish") -> None:
    """Start ``work(*args)`` on a thread; :func:`wait_until_finished` waits for it."""
    with _finishing_lock:
        _finishing.append(later(work, *args, name=name))


def wait_until_finished() -> list[BaseException]:
    """Wait for all work :func:`finish_soon` was given; the errors it ended with."""
    errors = []
    while True:
        with _finishing_lock:
            if not _finishing:
                return errors
            future = _finishing.pop(0)
        error = future.exception()
        if error is not None:
            errors.append(error)


def each_at_once(works: Sequence[Callable[[], T]], *, name: str = "appbuild-later") -> list[T]:
    """Every one of *works* on a thread of its own at once; their results in order (the
    first error, in that order, is raised once all have ended)."""
    futures = [later(work, name=name) for work in works]
    for future in futures:
        future.exception()  # wait for all before raising any
    return [future.result() for future in futures]
