"""Shared fixtures: temporary repositories and workspaces, real cooks shared per session.

Slow, real work (cooking libhello/hello for both architectures, fetching Debian
sources) happens once per session in fixtures that tests only read from. Tests that
change things get their own repository or workspace in ``tmp_path``.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from appbuilder.arch import get_arch
from appbuilder.settings import Settings, load_settings

PROJECT = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent


def make_settings(root: Path, *, workspace: Path = PROJECT, cache: Path | None = None) -> Settings:
    """Settings of *workspace* with all runtime data under *root* (cache may be shared)."""
    base = load_settings(workspace)
    return dataclasses.replace(
        base,
        workspace=workspace,
        repository=root / "repo",
        cache=cache or root / "cache",
        logs=root / "logs",
        images=root / "images",
    )


def env_for(settings: Settings) -> dict[str, str]:
    """Environment that points the ``appbuild`` command at *settings*."""
    env = dict(os.environ)
    env.update(
        APPBUILD_WORKSPACE=str(settings.workspace),
        APPBUILD_REPOSITORY=str(settings.repository),
        APPBUILD_CACHE=str(settings.cache),
        APPBUILD_LOGS=str(settings.logs),
        APPBUILD_IMAGES=str(settings.images),
    )
    return env


def run_appbuild(settings: Settings, *args: str, check: bool = True, timeout: float = 1800, **kw):
    """Run the real ``appbuild`` command line; returns the CompletedProcess."""
    proc = subprocess.run(
        [str(VENV_BIN / "appbuild"), *args],
        env=env_for(settings),
        cwd=kw.pop("cwd", settings.workspace),
        capture_output=True,
        text=True,
        timeout=timeout,
        **kw,
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"appbuild {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


@pytest.fixture(scope="session")
def shared_cache(tmp_path_factory) -> Path:
    """One lookaside cache for the session: every source is fetched once."""
    return tmp_path_factory.mktemp("cache")


@pytest.fixture
def settings(tmp_path, shared_cache) -> Settings:
    return make_settings(tmp_path, cache=shared_cache)


@pytest.fixture
def repo(settings):
    from appbuilder.repository.repo import Repository

    r = Repository(settings.repository, settings.label)
    yield r
    r.close()


def new_workspace(root: Path, recipes: list[str] = (), *, label: str = "cernvm@cvm:2") -> Path:
    """A scratch workspace under *root* holding copies of some of the project's recipes."""
    ws = root / "workspace"
    (ws / "repo").mkdir(parents=True)
    (ws / "recipes").mkdir()
    (ws / "groups").mkdir()
    (ws / "repo" / "config.yaml").write_text(f"label: {label}\nsource_date_epoch: 1700000000\n")
    for name in recipes:
        shutil.copytree(PROJECT / "recipes" / name, ws / "recipes" / name)
    return ws


@pytest.fixture
def workspace(tmp_path, shared_cache):
    """A scratch workspace (empty recipes/) and its settings."""
    ws = new_workspace(tmp_path)
    return make_settings(tmp_path, workspace=ws, cache=shared_cache)


@pytest.fixture(scope="session")
def hello_repo(tmp_path_factory, shared_cache):
    """libhello and hello cooked for x86_64 and x86 through the real CLI, once per session."""
    root = tmp_path_factory.mktemp("hello-repo")
    s = make_settings(root, cache=shared_cache)
    run_appbuild(s, "cook", "recipes/libhello", "recipes/hello", "--arch", "all", "-j", "2")
    return s


@pytest.fixture(scope="session")
def x86_64():
    return get_arch("x86_64")


@pytest.fixture(scope="session")
def x86():
    return get_arch("x86")
