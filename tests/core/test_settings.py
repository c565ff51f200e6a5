"""One settings table drives repo/config.yaml, the environment, the flags and the README."""

from __future__ import annotations

import re
import subprocess

import pytest

from appbuilder.core.settings import (
    BY_KEY,
    SETTINGS,
    SettingsError,
    load_settings,
    markdown_table,
)
from tests.conftest import PROJECT, VENV_BIN, make_settings, new_workspace


@pytest.fixture
def ws(tmp_path, monkeypatch):
    for s in SETTINGS:
        if s.env:
            monkeypatch.delenv(s.env, raising=False)
    root = new_workspace(tmp_path)
    return root


def write(ws, text: str):
    (ws / "repo" / "config.yaml").write_text(text)


def test_the_readme_shows_the_table():
    readme = (PROJECT / "README.md").read_text()
    block = re.search(r"<!-- settings-table[^>]*-->\n(.*?)<!-- /settings-table -->", readme, re.S)
    assert block and block.group(1) == markdown_table()


def test_defaults_config_environment_and_flags_in_that_order(ws, monkeypatch):
    s = load_settings(ws)
    assert s.get("cook.command_timeout") == 14400.0 and s.get("cook.max_unpacked_size") == 16 << 30
    assert s.repository == ws / "repo" / "data"
    write(ws, "label: a@b:1\ncook:\n  command_timeout: 60\n  max_unpacked_size: 64K\npaths:\n  data: /srv/x\n"
              "publish:\n  to: /srv/releases\n  key: cfg-key\n")
    s = load_settings(ws)
    assert (s.label, s.get("cook.command_timeout"), s.get("cook.max_unpacked_size")) == ("a@b:1", 60.0, 65536)
    assert s.repository.as_posix() == "/srv/x" and s.get("publish.to") == "/srv/releases"
    monkeypatch.setenv("APPBUILD_PUBLISH_TO", "/env/releases")
    monkeypatch.setenv("APPBUILD_SIGNING_KEY", "env-key")
    s = load_settings(ws)
    assert s.get("publish.to") == "/env/releases" and s.get("publish.key") == "env-key"

    class Args:
        publish_to = "s3://bucket/flag"
        publish_key = None
    flagged = s.with_flags(Args())
    assert flagged.get("publish.to") == "s3://bucket/flag" and flagged.get("publish.key") == "env-key"


@pytest.mark.parametrize("text, message", [
    ("lable: x@y:1\n", "unknown setting 'lable' (did you mean 'label'?)"),
    ("cook:\n  command_timout: 5\n", "unknown setting cook.command_timout (did you mean 'command_timeout'?)"),
    ("cook: 5\n", "'cook:' must be a mapping (command_timeout, "),
    ("cook:\n  command_timeout: -1\n", "-1 is not valid for cook.command_timeout: expected a positive number"),
    ("cook:\n  max_unpacked_size: lots\n", "is not valid for cook.max_unpacked_size: 'lots' is not a size"),
    ("toolchain: gcc\n", "is not valid for toolchain: expected the name of a group recipe"),
    ("upstream:\n  dep: []\n", "unknown kind 'dep' (did you mean 'deb'?)"),
    ("upstream:\n  deb:\n    - pakages: [x]\n", "unknown key 'pakages' (did you mean 'packages'?)"),
    ("upstream:\n  rpm:\n    - only: [x]\n", "rpm entry: name the rpm-md repository (repo:)"),
    ("source_date_epoch: yesterday\n", "is not valid for source_date_epoch"),
    ("- a list\n", "expected a mapping at top level"),
    ("label: [unclosed\n", "not valid YAML"),
])
def test_a_bad_setting_is_refused_naming_the_file_and_the_key(ws, text, message):
    write(ws, text)
    with pytest.raises(SettingsError) as exc:
        load_settings(ws)
    assert message in str(exc.value) and "config.yaml" in str(exc.value)


def test_a_bad_environment_value_is_named(ws, monkeypatch):
    monkeypatch.setenv("APPBUILD_QEMU_ACCEL", "hvf")
    with pytest.raises(SettingsError, match="environment variable APPBUILD_QEMU_ACCEL: 'hvf' is not valid for "
                                            "qemu.accel: expected tcg or kvm"):
        load_settings(ws)


def test_the_command_line_refuses_a_misspelt_key_without_a_traceback(ws, tmp_path):
    write(ws, "labell: x@y:1\n")
    proc = subprocess.run([str(VENV_BIN / "appbuild"), "query"], cwd=ws, capture_output=True, text=True,
                          env={"PATH": "/usr/bin:/bin", "APPBUILD_WORKSPACE": str(ws)})
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert "unknown setting 'labell' (did you mean 'label'?)" in proc.stderr


def test_flags_come_from_the_table():
    help_text = subprocess.run([str(VENV_BIN / "appbuild"), "publish", "--help"], capture_output=True,
                               text=True).stdout
    for s in SETTINGS:
        for flag in s.cli.get("publish", ()):
            assert flag in help_text
    rollback = subprocess.run([str(VENV_BIN / "appbuild"), "rollback", "--help"], capture_output=True,
                              text=True).stdout
    assert "--dest" in rollback and "--key" not in rollback


def test_every_key_the_project_config_uses_is_declared():
    s = make_settings(PROJECT / "tmp-never-made")
    assert s.get("toolchain") == "group-toolchain" and "busybox" in s.mirrors
    assert all(k in BY_KEY for k in s.values)


def test_a_workspace_named_by_the_environment_must_be_one(tmp_path, monkeypatch):
    monkeypatch.setenv("APPBUILD_WORKSPACE", str(tmp_path / "typo"))
    with pytest.raises(SettingsError, match=r"APPBUILD_WORKSPACE=.*typo is not an appbuild workspace: it has no "
                                            r"repo/config.yaml"):
        load_settings()
    assert not (tmp_path / "typo").exists()
