"""Work on threads of its own (appbuilder.core.background)."""

from __future__ import annotations

import threading
import time

import pytest

from appbuilder.core.background import each_at_once, finish_soon, later, wait_until_finished


def test_later_gives_the_result_or_the_error_when_asked():
    started = threading.Event()

    def work(x):
        started.set()
        return x * 2

    assert later(work, 21).result(timeout=10) == 42 and started.is_set()
    failing = later(lambda: 1 / 0)
    with pytest.raises(ZeroDivisionError):
        failing.result(timeout=10)


def test_later_runs_on_a_daemon_thread_that_does_not_hold_up_the_exit():
    names = []
    later(lambda: names.append((threading.current_thread().name, threading.current_thread().daemon)),
          name="appbuild-test").result(timeout=10)
    assert names == [("appbuild-test", True)]


def test_each_at_once_runs_them_together_and_keeps_the_order():
    gate = threading.Barrier(3, timeout=10)  # each waits for the other two: only together can they pass

    def work(n):
        gate.wait()
        return n
    assert each_at_once([lambda n=n: work(n) for n in (1, 2, 3)]) == [1, 2, 3]


def test_each_at_once_raises_the_first_error_once_all_have_ended():
    ended = []

    def slow():
        time.sleep(0.2)
        ended.append("slow")
        return 1

    def bad():
        raise ValueError("bad list")
    with pytest.raises(ValueError, match="bad list"):
        each_at_once([bad, slow])
    assert ended == ["slow"]


def test_finish_soon_is_waited_for_and_its_errors_are_handed_back():
    done = []

    def slow():
        time.sleep(0.2)
        done.append(1)
    finish_soon(slow)
    finish_soon(lambda: (_ for _ in ()).throw(OSError("disk full")))
    errors = wait_until_finished()
    assert done == [1] and [str(e) for e in errors] == ["disk full"]
    assert wait_until_finished() == []  # nothing left
