"""Broken sources through the real command line: each cook fails with exit code 1 and a
clear message, commits nothing, and writes nothing outside its build directory."""

from __future__ import annotations

import hashlib
import io
import tarfile
import textwrap
from pathlib import Path

import pytest

from tests.conftest import run_appbuild


@pytest.fixture
def workspace(cook_workspace):
    """Cooks here need the toolchain in the repository (a build root is made from it)."""
    return cook_workspace


def write_recipe(ws: Path, name: str, setup: str, files: dict[str, bytes] | None = None) -> Path:
    d = ws / "recipes" / name
    d.mkdir(parents=True)
    body = textwrap.indent(textwrap.dedent(setup).strip(), " " * 8)
    (d / "recipe.py").write_text(
        f"class R(PackageRecipe):\n    name = '{name}'\n    version = '1.0'\n\n    def setup(r):\n{body}\n"
    )
    for fname, content in (files or {}).items():
        (d / fname).write_bytes(content)
    return d


def cook_fails(settings, name: str) -> str:
    """Cook recipes/NAME, expect a clean failure and nothing committed; returns stderr."""
    proc = run_appbuild(settings, "cook", f"recipes/{name}", check=False)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    query = run_appbuild(settings, "query", name, check=False)
    assert query.stdout.strip() == "" and f"no troves named {name}" in query.stderr
    assert not list((settings.cache / "work").glob(f"{name}-*"))  # the work directory is gone
    return proc.stderr


def line_of(recipe_dir: Path, needle: str) -> int:
    lines = (recipe_dir / "recipe.py").read_text().splitlines()
    return next(i for i, line in enumerate(lines, 1) if needle in line)


def test_missing_source_file(workspace):
    d = write_recipe(workspace.workspace, "nosrc", """
        r.addSource('main.c')
        r.Create('/usr/share/nosrc/x', contents='x')
        """)
    err = cook_fails(workspace, "nosrc")
    assert f"recipe.py:{line_of(d, 'main.c')}" in err
    assert f"missing source: main.c is not in {d}" in err


def test_local_source_with_wrong_sha256(workspace):
    content = b"int main(void) { return 0; }\n"
    actual = hashlib.sha256(content).hexdigest()
    wrong = hashlib.sha256(b"what the recipe author meant").hexdigest()
    d = write_recipe(workspace.workspace, "badsum", f"""
        r.addSource('main.c', sha256='{wrong}')
        r.Create('/usr/share/badsum/x', contents='x')
        """, {"main.c": content})
    err = cook_fails(workspace, "badsum")
    assert f"recipe.py:{line_of(d, 'addSource')}" in err
    assert f"checksum mismatch for main.c: expected sha256 {wrong}, got {actual}" in err


def test_fetched_source_with_wrong_sha256_is_not_cached(workspace, tmp_path):
    served = tmp_path / "served"
    served.mkdir()
    content = b"#define VERSION 3\n"
    (served / "version.h").write_bytes(content)
    actual = hashlib.sha256(content).hexdigest()
    wrong = "ab" * 32
    d = write_recipe(workspace.workspace, "badfetch", f"""
        r.addSource('file://{served}/version.h', sha256='{wrong}')
        r.Create('/usr/share/badfetch/x', contents='x')
        """)
    err = cook_fails(workspace, "badfetch")
    assert f"recipe.py:{line_of(d, 'addSource')}" in err
    assert f"expected sha256 {wrong}" in err and f"got {actual}" in err
    lookaside = workspace.cache / "lookaside"
    assert not (lookaside / actual[:2] / actual).exists() and not (lookaside / wrong[:2] / wrong).exists()


def evil_tarball() -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data in (("evil-1.0/README", b"harmless\n"), ("evil-1.0/../../evil", b"escaped\n"),
                           ("../evil", b"escaped\n")):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def test_archive_with_dot_dot_member_is_refused_and_nothing_escapes(workspace, tmp_path):
    d = write_recipe(workspace.workspace, "tarbomb", """
        r.addArchive('evil-1.0.tar.gz')
        r.mainDir('evil-1.0')
        r.Create('/usr/share/tarbomb/x', contents='x')
        """, {"evil-1.0.tar.gz": evil_tarball()})
    err = cook_fails(workspace, "tarbomb")
    assert f"recipe.py:{line_of(d, 'addArchive')}" in err
    assert "evil-1.0.tar.gz: member 'evil-1.0/../../evil' has a '..' component; refusing to unpack" in err
    # nothing was unpacked anywhere: not the harmless member, not the escaping ones
    for root in (tmp_path, workspace.cache):
        assert not [p for p in root.rglob("evil")], root
    assert not [p for p in tmp_path.rglob("README")]
    assert not [p for p in (workspace.cache / "work").rglob("README")]


def test_archive_by_url_without_sha256(workspace):
    d = write_recipe(workspace.workspace, "unpinned", """
        r.addArchive('https://example.org/unpinned-1.0.tar.gz')
        r.Create('/usr/share/unpinned/x', contents='x')
        """)
    err = cook_fails(workspace, "unpinned")
    assert f"recipe.py:{line_of(d, 'addArchive')}" in err
    assert "source https://example.org/unpinned-1.0.tar.gz is fetched by URL and must be pinned with sha256=" in err
