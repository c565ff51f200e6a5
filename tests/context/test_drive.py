"""Config drives (appbuild context make) and the user data check: made without root,
bit-for-bit reproducible, readable as the appliance reads them (label, files, modes)."""

from __future__ import annotations

import os
import stat
import subprocess

import pytest

from appbuilder.context.drive import ContextError, instance_id, make_config_drive
from appbuilder.context.userdata import check_user_data
from appbuilder.core.fileio import sha256_file
from tests.conftest import run_appbuild

USER_DATA = """[cernvm]
organisations = ATLAS
users = alice:atlas:secret
environment = A=1,B=two
contextualization_command = alice:/media/context/setup.sh
"""


def blkid(path) -> dict[str, str]:
    out = subprocess.run(["blkid", "-o", "export", str(path)], capture_output=True, text=True).stdout
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


@pytest.fixture
def inputs(tmp_path):
    (tmp_path / "user-data.ini").write_text(USER_DATA)
    (tmp_path / "setup.sh").write_text("#!/bin/sh\necho set up\n")
    os.chmod(tmp_path / "setup.sh", 0o755)
    (tmp_path / "notes.txt").write_text("plain file\n")
    return tmp_path


def test_an_iso_drive_holds_the_user_data_with_its_label_and_modes(inputs, tmp_path):
    drive = make_config_drive(inputs / "user-data.ini", tmp_path / "ctx.iso",
                              extra=[inputs / "setup.sh", inputs / "notes.txt"])
    assert drive.format == "iso" and drive.files == ("user-data", "meta-data", "notes.txt", "setup.sh")
    info = blkid(drive.path)
    assert info["TYPE"] == "iso9660" and info["LABEL"] == "cidata"
    out = tmp_path / "extracted"
    subprocess.run(["xorriso", "-osirrox", "on", "-indev", str(drive.path), "-extract", "/", str(out)],
                   check=True, capture_output=True)
    assert (out / "user-data").read_text() == USER_DATA
    assert (out / "meta-data").read_text() == f"instance-id: {instance_id(USER_DATA.encode())}\n"
    assert stat.S_IMODE((out / "setup.sh").stat().st_mode) & 0o111  # Rock Ridge keeps the executable bit
    assert not stat.S_IMODE((out / "notes.txt").stat().st_mode) & 0o111


def test_a_fat_drive_is_labelled_for_the_appliance(inputs, tmp_path):
    drive = make_config_drive(inputs / "user-data.ini", tmp_path / "ctx.img", extra=[inputs / "setup.sh"])
    info = blkid(drive.path)
    assert drive.format == "fat" and info["TYPE"] == "vfat" and info["LABEL"] == "CIDATA"
    env = {**os.environ, "MTOOLS_SKIP_CHECK": "1"}
    text = subprocess.run(["mtype", "-i", str(drive.path), "::/user-data"], capture_output=True, text=True,
                          env=env, check=True).stdout
    assert text == USER_DATA


@pytest.mark.parametrize("suffix", [".iso", ".img"])
def test_the_same_inputs_give_the_same_bytes(inputs, tmp_path, suffix):
    a = make_config_drive(inputs / "user-data.ini", tmp_path / f"a{suffix}", extra=[inputs / "setup.sh"])
    os.utime(tmp_path, None)
    b = make_config_drive(inputs / "user-data.ini", tmp_path / f"b{suffix}", extra=[inputs / "setup.sh"])
    assert sha256_file(a.path) == sha256_file(b.path)
    (inputs / "user-data.ini").write_text(USER_DATA + "services = crond\n")
    c = make_config_drive(inputs / "user-data.ini", tmp_path / f"c{suffix}", extra=[inputs / "setup.sh"],
                          source_date_epoch=int((inputs / "setup.sh").stat().st_mtime))
    assert sha256_file(c.path) != sha256_file(a.path)


def test_bad_requests_are_refused(inputs, tmp_path):
    (inputs / "plain.ini").write_text("[amiconfig]\nx = 1\n")
    with pytest.raises(ContextError, match="no \\[cernvm\\] section"):
        make_config_drive(inputs / "plain.ini", tmp_path / "x.iso")
    with pytest.raises(ContextError, match="cannot tell the format"):
        make_config_drive(inputs / "user-data.ini", tmp_path / "x.bin")
    (inputs / "sub").mkdir()
    (inputs / "sub" / "user-data").write_text("x")
    with pytest.raises(ContextError, match="two files named 'user-data'"):
        make_config_drive(inputs / "user-data.ini", tmp_path / "x.iso", extra=[inputs / "sub" / "user-data"])
    with pytest.raises(ContextError, match="cannot read the user data"):
        make_config_drive(inputs / "missing.ini", tmp_path / "x.iso")
    assert not list(tmp_path.glob("x.*"))


def test_the_check_names_the_lines_the_appliance_would_skip():
    text = """# comment
[cernvm]
organisations = ATLAS
no equals sign here
users = alice:atlas:pw,bob,Carol:atlas:pw
environment = GOOD=1,2BAD=x,novalue
colour = blue
contextualization_command = /no/user.sh
cvmfs_quota_limit = lots
[broken
[amiconfig]
anything goes here
"""
    assert check_user_data(text) == [
        "line 4: expected 'key = value', got: no equals sign here",
        "line 5: users: 'bob' is not name:group:password",
        "line 5: users: 'Carol:atlas' is not a valid user and group name",
        "line 6: environment: '2BAD' is not a variable name",
        "line 6: environment: 'novalue' is not NAME=VALUE",
        "line 7: unknown key 'colour' (ignored)",
        "line 8: contextualization_command must be user:/path/to/script, got: /no/user.sh",
        "line 9: cvmfs_quota_limit must be a number of MB, got: lots",
        "line 10: malformed section header: [broken",
    ]
    assert check_user_data(USER_DATA) == []
    assert check_user_data("[other]\n") == ["there is no [cernvm] section"]


def test_the_login_keys_are_checked_as_the_appliance_does(tmp_path):
    """login_user, login_password_hash and ssh_authorized_keys: the keys made by ssh-keygen
    pass; a key with options in front, a truncated blob, a blob of another type, a
    plain-text password and root are reported (the appliance skips them too)."""
    import base64
    import subprocess

    keys = {}
    for kind in ("ed25519", "rsa", "ecdsa"):
        subprocess.run(["ssh-keygen", "-q", "-t", kind, "-N", "", "-C", f"{kind}@test", "-f", str(tmp_path / kind)],
                       check=True)
        keys[kind] = (tmp_path / f"{kind}.pub").read_text().strip()
    kind, blob, comment = keys["ed25519"].split()
    truncated = base64.b64encode(base64.b64decode(blob)[:-8]).decode()
    text = "[cernvm]\nlogin_user = alice\nlogin_password_hash = $6$saltsalt$Yx8H4r1.cSUzqK/s4Cg0\n" + "".join(
        f"ssh_authorized_keys = {k}\n" for k in keys.values()) + (
        f'ssh_authorized_keys = command="reboot" {keys["ed25519"]}\n'
        f"ssh_authorized_keys = {kind} {truncated} {comment}\n"
        f"ssh_authorized_keys = ssh-rsa {blob}\n"
        "login_password_hash = s3cret\n"
        "login_user = root\n")
    assert check_user_data(text) == [
        "line 7: not an SSH public key (TYPE BASE64 [COMMENT] with a known type); ignored",
        "line 8: not an SSH public key (TYPE BASE64 [COMMENT] with a known type); ignored",
        "line 9: not an SSH public key (TYPE BASE64 [COMMENT] with a known type); ignored",
        "line 10: login_password_hash is not a crypt(3) hash such as $6$salt$hash (ignored)",
        "line 11: login_user root: root stays locked (ignored)",
    ]


def test_context_make_from_the_command_line_warns_and_writes(inputs, tmp_path, workspace):
    (inputs / "user-data.ini").write_text(USER_DATA + "oops\n")
    proc = run_appbuild(workspace, "context", "make", str(inputs / "user-data.ini"), "-o", str(tmp_path / "c.iso"),
                        "--add", str(inputs / "setup.sh"))
    assert "line 6: expected 'key = value', got: oops" in proc.stderr
    assert "label cidata" in proc.stdout and (tmp_path / "c.iso").exists()
    bad = run_appbuild(workspace, "context", "make", str(inputs / "user-data.ini"), "-o", str(tmp_path / "c.txt"),
                       check=False)
    assert bad.returncode == 1 and "cannot tell the format" in bad.stderr
