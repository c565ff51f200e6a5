"""A way in: the production appliance booted under QEMU (TCG) and logged into over SSH
(the host's OpenSSH client, through ``hostfwd`` from a port on 127.0.0.1 to the
guest's dropbear).

- Metadata: an EC2 key (``latest/meta-data/public-keys/0/openssh-key``, behind IMDSv2: a
  session token from ``PUT latest/api/token`` is required) and an OpenStack key
  (``public_keys`` of ``openstack/latest/meta_data.json``) served on 127.0.0.1 and
  reached by the guest at 169.254.169.254 (the user network is 169.254.0.0/16 so that
  the forward can sit at the metadata address); both keys log in as the image's login
  user, and root is refused by the server even with a good key.
- OVF environment: an ISO labelled "OVF ENV" holding ``ovf-env.xml`` as vSphere writes
  it, on an IDE CD-ROM; its properties name another user, give it a key and a password
  hash, and a proxy; the user logs in with the key and, separately, with the password.
"""

from __future__ import annotations

import http.server
import json
import os
import re
import subprocess
import time
from functools import partial
from pathlib import Path

import pytest

from appbuilder.verify.boot import BOOT_MARKER, BootOptions
from tests.conftest import free_port
from tests.guest import RunningGuest
from tests.servers import _LoopbackServer

pytestmark = pytest.mark.slow

SSH_OPTIONS = ["-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR",
               "-o", "ConnectTimeout=60", "-o", "ServerAliveInterval=10"]


def keypair(directory: Path, name: str, kind: str = "ed25519") -> Path:
    """A fresh key pair made by ssh-keygen; returns the private key's path."""
    path = directory / name
    subprocess.run(["ssh-keygen", "-q", "-t", kind, "-N", "", "-C", f"{name}@appbuild-test", "-f", str(path)],
                   check=True)
    return path


def ssh(port: int, user: str, command: str, *, key: Path | None = None, password: str | None = None,
        tmp: Path | None = None) -> subprocess.CompletedProcess:
    """Run *command* in the guest over SSH as *user*, with a key or a password (given to
    ssh through SSH_ASKPASS: no terminal is needed)."""
    argv = ["ssh", "-p", str(port), *SSH_OPTIONS]
    env = dict(os.environ)
    if key is not None:
        argv += ["-i", str(key), "-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes",
                 "-o", "PreferredAuthentications=publickey"]
    else:
        askpass = tmp / "askpass.sh"
        askpass.write_text(f"#!/bin/sh\necho '{password}'\n")
        askpass.chmod(0o700)
        env.update(SSH_ASKPASS=str(askpass), SSH_ASKPASS_REQUIRE="force", DISPLAY=":0")
        argv += ["-o", "PubkeyAuthentication=no", "-o", "PreferredAuthentications=password",
                 "-o", "NumberOfPasswordPrompts=1"]
    return subprocess.run([*argv, f"{user}@127.0.0.1", command], capture_output=True, text=True, timeout=180,
                          env=env, stdin=subprocess.DEVNULL, start_new_session=True)


TOKEN = "AQAEAAppbuild-test-token_0123456789=="


class _Metadata(http.server.SimpleHTTPRequestHandler):
    """A metadata service from a directory: EC2's ``latest/`` with IMDSv2 required (a GET
    without the session token gets 401, as on an instance with HttpTokens=required),
    OpenStack's ``openstack/`` without tokens."""

    def log_message(self, *args) -> None:
        pass

    def answer(self, status: int, body: bytes = b"") -> None:
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_PUT(self) -> None:
        self.server.requests.append(f"PUT {self.path}")
        if self.path == "/latest/api/token" and self.headers.get("X-aws-ec2-metadata-token-ttl-seconds"):
            self.answer(200, TOKEN.encode())
        else:
            self.answer(400)

    def do_GET(self) -> None:
        self.server.requests.append(self.path)
        if self.path.startswith("/latest/") and self.headers.get("X-aws-ec2-metadata-token") != TOKEN:
            self.answer(401)
        else:
            super().do_GET()


def test_a_metadata_key_logs_in_over_ssh_and_root_is_refused(appliance, tmp_path):
    ec2_key, openstack_key = keypair(tmp_path, "ec2"), keypair(tmp_path, "openstack", "ecdsa")
    www = tmp_path / "metadata"
    keys = www / "latest" / "meta-data" / "public-keys"
    (keys / "0").mkdir(parents=True)
    (keys / "index.html").write_text("0=ec2\n")  # what GET .../public-keys/ answers
    (keys / "0" / "openssh-key").write_text(Path(f"{ec2_key}.pub").read_text())
    (www / "openstack" / "latest").mkdir(parents=True)
    (www / "openstack" / "latest" / "meta_data.json").write_text(json.dumps({
        "uuid": "d8e02d56-2648-49a3-bf97-6be8f1204f38", "hostname": "test.novalocal", "launch_index": 0,
        "meta": {"public_keys": "not this one"},
        "public_keys": {"openstack": Path(f"{openstack_key}.pub").read_text(),
                        "hostile": 'command="reboot" ' + Path(f"{openstack_key}.pub").read_text()},
        "keys": [{"name": "openstack", "type": "ssh", "data": "ssh-ed25519 AAAA"}]}))
    server = _LoopbackServer(partial(_Metadata, directory=str(www)))
    port = free_port()
    image = appliance.file("x86_64", "raw")
    opts = BootOptions(arch="x86_64", drive_format="raw", timeout=120, network="169.254.0.0/16",
                       hostfwd=[(port, 22)], guestfwd=[("169.254.169.254", 80, server.port)])
    start = time.monotonic()
    try:
        with RunningGuest(image, opts) as guest:
            guest.wait_for(BOOT_MARKER)
            assert guest.wait_for("cernvm-context: SSH key 0") == "cernvm-context: SSH key 0 from the EC2 metadata service"
            assert guest.wait_for("cernvm-context: OpenStack metadata key") == (
                "cernvm-context: OpenStack metadata key 2: not an SSH public key "
                "(TYPE BASE64 [COMMENT] with a known type); ignored")
            assert guest.wait_for("SSH key(s) from the OpenStack") == \
                "cernvm-context: 1 SSH key(s) from the OpenStack metadata service"
            assert guest.wait_for("cernvm-context: user cernvm: ") == \
                "cernvm-context: user cernvm: 2 SSH key(s) in ~cernvm/.ssh/authorized_keys"
            assert re.fullmatch(r"sshd: host key ed25519 SHA256:\S{43}", guest.wait_for("sshd: host key ed25519"))
            assert guest.wait_for("sshd: log in") == \
                "sshd: log in over SSH to 169.254.2.15 as: cernvm (key); root is locked"
            ready = time.monotonic() - start
            for key in (ec2_key, openstack_key):
                proc = ssh(port, "cernvm", "id -un; . /etc/appliance-release; echo $GROUP $VERSION $ARCH", key=key)
                assert proc.returncode == 0, proc.stderr
                assert proc.stdout.splitlines() == [
                    "cernvm", f"group-cernvm cernvm@cvm:2/{appliance.version['x86_64']} x86_64"]
            refused = ssh(port, "root", "id", key=ec2_key)
            assert refused.returncode == 255 and "Permission denied" in refused.stderr
            logged = ssh(port, "cernvm", "grep -c 'root login rejected' /var/log/dropbear.log; "
                                         "ls -ld ~/.ssh | cut -c1-10; wc -l < ~/.ssh/authorized_keys", key=ec2_key)
            assert logged.stdout.split() == ["1", "drwx------", "2"], logged.stdout + logged.stderr
    finally:
        server.stop()
    assert server.requests == ["PUT /latest/api/token", "/latest/user-data", "/latest/meta-data/public-keys/",
                               "/latest/meta-data/public-keys/0/openssh-key", "/openstack/latest/meta_data.json"]
    print(f"x86_64: ready for SSH {ready:.1f} s after QEMU started; logged in with both metadata keys")


OVF_ENV = """<?xml version="1.0" encoding="UTF-8"?>
<Environment
     xmlns="http://schemas.dmtf.org/ovf/environment/1"
     xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"
     xmlns:oe="http://schemas.dmtf.org/ovf/environment/1"
     xmlns:ve="http://www.vmware.com/schema/ovfenv"
     oe:id=""
     ve:vCenterId="vm-4711">
   <PlatformSection>
      <Kind>VMware ESXi</Kind>
      <Version>8.0.2</Version>
      <Vendor>VMware, Inc.</Vendor>
      <Locale>en</Locale>
   </PlatformSection>
   <PropertySection>
         <Property oe:key="appliance.login_user" oe:value="alice"/>
         <Property oe:key="appliance.login_password_hash" oe:value="{hash}"/>
         <Property oe:key="appliance.proxy" oe:value="http://squid.example.org:3128;DIRECT"/>
         <Property oe:key="appliance.repositories" oe:value=""/>
         <Property oe:key="appliance.ssh_authorized_keys" oe:value="{key}&#10;no key at all; $(reboot)"/>
         <Property oe:key="vami.hostname" oe:value="ignored"/>
   </PropertySection>
   <ve:EthernetAdapterSection>
      <ve:Adapter ve:mac="00:50:56:8a:3c:2f" ve:network="VM Network" ve:unitNumber="7"/>
   </ve:EthernetAdapterSection>
</Environment>
"""


def ovf_environment_iso(directory: Path, text: str) -> Path:
    """The CD-ROM vSphere attaches for the iso transport: volume "OVF ENV", ovf-env.xml at its root."""
    root = directory / "ovf-env"
    root.mkdir()
    (root / "ovf-env.xml").write_text(text)
    iso = directory / "ovf-env.iso"
    subprocess.run(["xorriso", "-as", "mkisofs", "-quiet", "-V", "OVF ENV", "-J", "-R", "-o", str(iso), str(root)],
                   check=True, capture_output=True)
    return iso


def test_an_ovf_environment_gives_a_user_a_key_and_a_password(appliance, tmp_path):
    from xml.sax.saxutils import escape

    key = keypair(tmp_path, "vsphere")
    password = "ovf-s3cret"
    hashed = subprocess.run(["openssl", "passwd", "-6", "-salt", "appbuildtest", password], check=True,
                            capture_output=True, text=True).stdout.strip()
    text = OVF_ENV.format(hash=escape(hashed), key=escape(Path(f"{key}.pub").read_text().strip()))
    iso = ovf_environment_iso(tmp_path, text)
    port = free_port()
    image = appliance.file("x86", "raw")
    opts = BootOptions(arch="x86", drive_format="raw", timeout=120, hostfwd=[(port, 22)],
                       extra_args=["-drive", f"file={iso},format=raw,if=ide,media=cdrom,readonly=on"])
    with RunningGuest(image, opts) as guest:
        guest.wait_for(BOOT_MARKER)
        assert re.fullmatch(r"cernvm-context: OVF environment from /dev/sr0",
                            guest.wait_for("cernvm-context: OVF environment"))
        assert guest.wait_for("cernvm-context: OVF property") == (
            "cernvm-context: OVF property appliance.ssh_authorized_keys: not an SSH public key "
            "(TYPE BASE64 [COMMENT] with a known type); ignored")
        assert guest.wait_for("cernvm-context: user alice: 1 SSH key") == \
            "cernvm-context: user alice: 1 SSH key(s) in ~alice/.ssh/authorized_keys"
        guest.wait_for("cernvm-context: done")
        assert guest.wait_for("sshd: log in") == "sshd: log in over SSH to 10.0.2.15 as: alice (password or key); root is locked"
        by_key = ssh(port, "alice", "id -un; cat /etc/cvmfs/default.local", key=key)
        assert by_key.returncode == 0, by_key.stderr
        assert by_key.stdout.splitlines()[0] == "alice"
        assert "CVMFS_HTTP_PROXY='http://squid.example.org:3128;DIRECT'" in by_key.stdout
        by_password = ssh(port, "alice", "id -un; uname -m", password=password, tmp=tmp_path)
        assert by_password.returncode == 0, by_password.stderr
        assert by_password.stdout.split() == ["alice", "i686"]
        wrong = ssh(port, "alice", "id", password="not-it", tmp=tmp_path)
        assert wrong.returncode == 255 and "Permission denied" in wrong.stderr
        console = guest.console
    assert hashed not in console and password not in console
