"""One way to bring the repository up to date (the CLI, the image build, the nightly):
import what repo/config.yaml lists and is missing, cook what changed, and say why every
failed cook failed, every time."""

from __future__ import annotations

import textwrap

import pytest

from tests.conftest import run_appbuild


@pytest.fixture
def workspace(cook_workspace):
    return cook_workspace


def recipe(ws, name: str, body: str) -> None:
    d = ws / "recipes" / name
    d.mkdir(parents=True, exist_ok=True)
    (d / "recipe.py").write_text(textwrap.dedent(body))


def test_every_failed_cook_is_reported_with_its_reason_each_time(workspace):
    ws = workspace.workspace
    recipe(ws, "broken", """\
        class Broken(PackageRecipe):
            name = 'broken'
            version = '1'
            def setup(r):
                r.Run('echo the compiler says no >&2; exit 3')
        """)
    recipe(ws, "needs-broken", """\
        class NeedsBroken(PackageRecipe):
            name = 'needs-broken'
            version = '1'
            buildRequires = ['broken:runtime']
            def setup(r):
                r.Create('/usr/share/x', contents='x')
        """)
    recipe(ws, "fine", """\
        class Fine(PackageRecipe):
            name = 'fine'
            version = '1'
            def setup(r):
                r.Create('/usr/share/fine', contents='fine')
        """)
    for attempt in range(2):
        proc = run_appbuild(workspace, "cook", "recipes/", check=False)
        assert proc.returncode == 1 and "Traceback" not in proc.stderr
        assert "1 cook(s) failed:\n  broken (x86_64):\n" in proc.stderr
        assert "exited with status 3" in proc.stderr and "the compiler says no" in proc.stderr
        assert "needs-broken (x86_64): broken (x86_64) failed" in proc.stderr
    assert "fine (x86_64) is up to date" in proc.stdout  # the independent one was cooked the first time


def test_missing_upstream_packages_are_imported_before_cooking_and_only_then(workspace):
    ws = workspace.workspace
    config = ws / "repo" / "config.yaml"
    config.write_text(config.read_text() + "upstream:\n  deb:\n    - packages: [zlib1g-dev]\n")
    recipe(ws, "zuser", """\
        class ZUser(PackageRecipe):
            name = 'zuser'
            version = '1'
            buildRequires = ['zlib1g-dev']
            def setup(r):
                r.Run('printf "#include <zlib.h>\\\\nint main(void){return !zlibVersion();}\\\\n" > z.c && '
                      '%(cc)s -o z z.c -lz && mkdir -p %(destdir)s/usr/bin && cp z %(destdir)s/usr/bin/')
        """)
    first = run_appbuild(workspace, "cook", "recipes/zuser")
    assert "importing upstream packages: 1 listed in repo/config.yaml are not in the repository (zlib1g-dev:amd64)" \
        in first.stdout + first.stderr
    assert "cooked zuser=" in first.stdout
    again = run_appbuild(workspace, "cook", "recipes/zuser")
    assert "importing upstream" not in again.stdout + again.stderr and "zuser (x86_64) is up to date" in again.stdout
