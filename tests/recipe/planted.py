"""Helpers for the symlink-attack tests: a canary directory outside the trees a build
writes, a snapshot of it, and both ways of resolving paths beneath a root (the kernel's
openat2, and the component-by-component walk used where openat2 is missing)."""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

import pytest

from appbuilder.core import beneath

CANARY_TEXT = b"the host's own file\n"


def snapshot(top: Path) -> dict[str, tuple]:
    """Every entry under *top* (itself included): type, mode, content or link target."""
    out: dict[str, tuple] = {}
    for dirpath, dirnames, filenames in os.walk(top):
        for name in [".", *dirnames, *filenames]:
            path = Path(dirpath, name)
            st = path.lstat()
            rel = os.path.relpath(path, top)
            if stat.S_ISLNK(st.st_mode):
                out[rel] = ("link", os.readlink(path))
            elif stat.S_ISREG(st.st_mode):
                out[rel] = ("file", stat.S_IMODE(st.st_mode), path.read_bytes())
            else:
                out[rel] = ("dir" if stat.S_ISDIR(st.st_mode) else "other", stat.S_IMODE(st.st_mode))
    return out


@pytest.fixture
def canary(tmp_path) -> Path:
    """A directory outside every tree under test: a file with a known mode, a subdirectory
    holding another; tests plant symlinks to it and check it never changes."""
    top = tmp_path / "canary"
    (top / "sub").mkdir(parents=True)
    (top / "file").write_bytes(CANARY_TEXT)
    os.chmod(top / "file", 0o640)
    (top / "sub" / "inner").write_bytes(b"inner\n")
    os.chmod(top / "sub", 0o750)
    return top


@pytest.fixture
def untouched(canary):
    """The canary, checked after the test to be byte-, mode- and tree-identical."""
    before = snapshot(canary)
    yield canary
    assert snapshot(canary) == before, "something outside the tree changed"


@pytest.fixture(params=["openat2", "walk"])
def resolver(request, monkeypatch) -> str:
    """Run the test with the kernel's openat2, then with the fallback walk (openat2
    answering ENOSYS, as on kernels before 5.6)."""
    if request.param == "openat2":
        probe = os.open("/", os.O_PATH)
        try:
            os.close(beneath._openat2(probe, b".", os.O_PATH, 0, beneath.RESOLVE_BENEATH))
        except OSError as exc:
            if exc.errno == errno.ENOSYS:
                pytest.skip("this kernel has no openat2")
            raise
        finally:
            os.close(probe)
        yield "openat2"
        return
    calls = []

    def no_openat2(*args):
        calls.append(args)
        raise OSError(errno.ENOSYS, os.strerror(errno.ENOSYS))

    monkeypatch.setattr(beneath, "_openat2", no_openat2)
    yield "walk"
    assert calls, "the fallback was never asked for (openat2 was not tried)"
