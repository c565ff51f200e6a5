"""appbuild upload ami against a real S3/EC2-compatible server (moto, on 127.0.0.1).

moto implements S3 (multipart uploads included), the EBS direct APIs, RegisterImage,
CreateTags and DescribeImages/Snapshots, but not ImportSnapshot (its server answers
500). So:

* ``--method ebs-direct`` runs end to end against moto through the real CLI;
* ``--method import`` runs against moto through the real CLI up to ImportSnapshot,
  which fails: the error must be clear and the uploaded object removed;
* the whole import flow (real multipart upload to moto's S3, then ImportSnapshot,
  polling, RegisterImage, CreateTags, delete) runs in-process with the EC2 calls
  answered by botocore's Stubber, which checks every request against the EC2 API model.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

boto3 = pytest.importorskip("boto3")
from botocore.stub import ANY, Stubber  # noqa: E402

from appbuilder.cloud.ami import (  # noqa: E402
    EBS_BLOCK,
    Endpoint,
    check_bootable,
    UploadError,
    load_image,
    upload_ami,
    verify_disk,
)

CREDS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
REGION = "us-east-1"


@pytest.fixture
def aws_env(monkeypatch):
    for k, v in CREDS.items():
        monkeypatch.setenv(k, v)
    monkeypatch.delenv("AWS_PROFILE", raising=False)


def _appbuild(*args):
    env = {**os.environ, **CREDS}
    return subprocess.run([str(Path(sys.executable).with_name("appbuild")), *args], capture_output=True, text=True,
                          env=env, timeout=300)


def _endpoint(url: str) -> Endpoint:
    return Endpoint(region=REGION, ec2=url, access_key="testing", secret_key="testing")


def test_load_image_and_verify(converted, tmp_path):
    directory = converted["ami"][1].parent
    image = load_image(directory)
    assert image.manifest_path == converted["ami"][1] and image.disk == converted["ami"][0]
    assert load_image(converted["ami"][1]) == image
    verify_disk(image)
    with pytest.raises(UploadError, match=r"no AMI manifest \(\*\.ami\.json\)"):
        load_image(tmp_path)
    bad = tmp_path / "x.ami.json"
    bad.write_text(image.manifest_path.read_text())
    (tmp_path / image.disk.name).write_bytes(b"\0" * image.manifest["disk"]["size"])
    with pytest.raises(UploadError, match="has sha256"):
        verify_disk(load_image(bad))


def test_ebs_direct_upload_end_to_end(converted, moto_endpoint):
    directory = converted["ami"][1].parent
    proc = _appbuild("upload", "ami", str(directory), "--endpoint", moto_endpoint, "--region", REGION,
                     "--method", "ebs-direct", "--poll", "0.1", "-j", "4")
    assert proc.returncode == 0, proc.stderr
    image_id = proc.stdout.strip().splitlines()[-1]
    assert image_id.startswith("ami-")
    assert "registered" in proc.stderr

    ec2, _, ebs = _endpoint(moto_endpoint).clients()
    image = load_image(directory)
    described = ec2.describe_images(ImageIds=[image_id])["Images"][0]
    assert described["Name"] == image.name
    tags = {t["Key"]: t["Value"] for t in described["Tags"]}
    assert tags["appbuild:sha256"] == image.manifest["disk"]["sha256"] and tags["appbuild:arch"] == "x86_64"
    snaps = ec2.describe_snapshots(Filters=[{"Name": "tag:appbuild:sha256", "Values": [tags["appbuild:sha256"]]}])
    snap = snaps["Snapshots"][-1]
    assert snap["State"] == "completed" and snap["VolumeSize"] == image.volume_size_gib
    # the snapshot's blocks are the disk's non-zero 512 KiB blocks
    blocks = ebs.list_snapshot_blocks(SnapshotId=snap["SnapshotId"])["Blocks"]
    raw = image.disk.read_bytes()
    nonzero = [i for i in range(len(raw) // EBS_BLOCK) if raw[i * EBS_BLOCK:(i + 1) * EBS_BLOCK].strip(b"\0")]
    assert sorted(b["BlockIndex"] for b in blocks) == nonzero
    for b in blocks[:4]:
        got = ebs.get_snapshot_block(SnapshotId=snap["SnapshotId"], BlockIndex=b["BlockIndex"], BlockToken=b["BlockToken"])
        assert got["BlockData"].read() == raw[b["BlockIndex"] * EBS_BLOCK:(b["BlockIndex"] + 1) * EBS_BLOCK]


def test_import_against_moto_fails_cleanly_and_removes_the_object(converted, moto_endpoint):
    proc = _appbuild("upload", "ami", str(converted["ami"][1]), "--endpoint", moto_endpoint, "--region", REGION,
                     "--bucket", "appbuild-cli", "--create-bucket", "--poll", "0.1")
    assert proc.returncode == 1
    assert "error: ImportSnapshot failed" in proc.stderr and "--method ebs-direct" in proc.stderr
    assert "uploading" in proc.stderr and "deleted s3://appbuild-cli/" in proc.stderr
    _, s3, _ = _endpoint(moto_endpoint).clients()
    assert s3.list_objects_v2(Bucket="appbuild-cli")["KeyCount"] == 0
    assert not s3.list_multipart_uploads(Bucket="appbuild-cli").get("Uploads")


def _stubbed_ec2(image, bucket, key, statuses):
    ec2 = boto3.client("ec2", region_name=REGION, aws_access_key_id="x", aws_secret_access_key="x")
    stub = Stubber(ec2)
    stub.add_response("import_snapshot", {"ImportTaskId": "import-snap-1"}, {
        "Description": ANY, "TagSpecifications": ANY,
        "DiskContainer": {"Description": image.name, "Format": "RAW", "UserBucket": {"S3Bucket": bucket, "S3Key": key}},
    })
    for status in statuses:
        detail = {"Status": status, "Progress": "50"} if status != "completed" else {
            "Status": "completed", "SnapshotId": "snap-0123456789abcdef0"}
        stub.add_response("describe_import_snapshot_tasks",
                          {"ImportSnapshotTasks": [{"ImportTaskId": "import-snap-1", "SnapshotTaskDetail": detail}]},
                          {"ImportTaskIds": ["import-snap-1"]})
    return ec2, stub


def test_import_flow_with_real_s3_and_stubbed_ec2(converted, moto_endpoint, aws_env):
    image = load_image(converted["ami"][1])
    _, s3, ebs = _endpoint(moto_endpoint).clients()
    bucket, key = "appbuild-import", "images/disk.raw"
    ec2, stub = _stubbed_ec2(image, bucket, key, ["active", "active", "completed"])
    m = image.manifest
    stub.add_response("register_image", {"ImageId": "ami-0123456789abcdef0"}, {
        "Name": m["name"], "Description": m["description"], "Architecture": "x86_64", "RootDeviceName": "/dev/sda1",
        # the test disk's kernel is a stand-in without ENA or NVMe drivers: registered without ENA
        "VirtualizationType": "hvm", "EnaSupport": False, "BootMode": "legacy-bios",
        "BlockDeviceMappings": [{"DeviceName": "/dev/sda1", "Ebs": {
            "SnapshotId": "snap-0123456789abcdef0", "DeleteOnTermination": True, "VolumeType": "gp3", "VolumeSize": 1}}],
    })
    stub.add_response("create_tags", {}, {"Resources": ["ami-0123456789abcdef0", "snap-0123456789abcdef0"],
                                          "Tags": image.tags})
    said = []
    with stub:
        result = upload_ami(image, _endpoint(moto_endpoint), bucket=bucket, key=key, create_bucket=True,
                            keep_object=True, poll=0.01, part_size=5 << 20, progress=said.append,
                            clients=(ec2, s3, ebs))
    stub.assert_no_pending_responses()
    assert (result.image_id, result.snapshot_id) == ("ami-0123456789abcdef0", "snap-0123456789abcdef0")
    # the disk really went to S3 as a multipart upload, whole
    head = s3.head_object(Bucket=bucket, Key=key)
    parts = -(-image.disk.stat().st_size // (5 << 20))
    assert head["ETag"].strip('"').endswith(f"-{parts}")
    body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    assert hashlib.sha256(body).hexdigest() == m["disk"]["sha256"]
    assert any("import import-snap-1: active 50%" in line for line in said)


def test_import_timeout_cancels_the_task_and_deletes_the_object(converted, moto_endpoint, aws_env):
    image = load_image(converted["ami"][1])
    _, s3, ebs = _endpoint(moto_endpoint).clients()
    bucket, key = "appbuild-timeout", "disk.raw"
    ec2, stub = _stubbed_ec2(image, bucket, key, ["active"])
    stub.add_response("cancel_import_task", {"ImportTaskId": "import-snap-1"},
                      {"ImportTaskId": "import-snap-1", "CancelReason": ANY})
    with stub, pytest.raises(UploadError, match="did not finish within 0 s"):
        upload_ami(image, _endpoint(moto_endpoint), bucket=bucket, key=key, create_bucket=True, timeout=0.0,
                   poll=0.01, clients=(ec2, s3, ebs))
    stub.assert_no_pending_responses()
    assert s3.list_objects_v2(Bucket=bucket)["KeyCount"] == 0


def test_upload_needs_a_region_and_a_bucket(converted, monkeypatch):
    monkeypatch.delenv("AWS_REGION", raising=False)
    monkeypatch.delenv("AWS_DEFAULT_REGION", raising=False)
    proc = _appbuild("upload", "ami", str(converted["ami"][1]), "--bucket", "b")
    assert proc.returncode == 1 and "say which region" in proc.stderr
    proc = _appbuild("upload", "ami", str(converted["ami"][1]), "--region", REGION)
    assert proc.returncode == 1 and "--bucket is needed" in proc.stderr


def _ami(test_disk, tmp_path: Path, **meta_changes) -> Path:
    """The ami format of the session's test disk (x86 unless told), its image metadata changed."""
    import dataclasses

    from appbuilder.formats.convert import convert_all
    from tests.disks import image_meta

    meta = dataclasses.replace(image_meta(test_disk, arch=meta_changes.pop("arch", "x86")), **meta_changes)
    out = convert_all(test_disk, "ami", tmp_path, meta)
    return out["ami"][1]


def test_a_32_bit_ami_without_xen_is_refused_before_any_upload(test_disk, tmp_path, aws_env):
    """EC2 runs i386 AMIs only on its Xen instance types: without Xen's disk and network
    drivers such an AMI could boot nowhere, so it is not uploaded (one line, no traceback)."""
    manifest = _ami(test_disk, tmp_path / "noxen")
    image = load_image(manifest)
    assert (image.manifest["architecture"], image.manifest["xen_support"]) == ("i386", False)
    with pytest.raises(UploadError, match=r"a 32-bit AMI runs only on EC2's Xen instance types.*no Xen support"):
        upload_ami(image, Endpoint(region=REGION), bucket="never-used")
    proc = _appbuild("upload", "ami", str(manifest), "--region", REGION, "--bucket", "never-used",
                     "--endpoint", "http://127.0.0.1:9")  # nothing listens there: refused before any call
    assert proc.returncode == 1 and "a 32-bit AMI runs only on EC2's Xen instance types" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr
    # with Xen's drivers (and CONFIG_XEN) the same image passes that check
    xen = load_image(_ami(test_disk, tmp_path / "xen", drivers=("xen_blkfront", "xen_netfront"),
                          kernel_config=("XEN=y",)))
    assert xen.manifest["xen_support"] is True
    check_bootable(xen)


def test_ena_is_registered_only_with_nvme_and_the_volume_is_whole_gib(test_disk, tmp_path):
    nitro = load_image(_ami(test_disk, tmp_path / "nitro", arch="x86_64", drivers=("ena", "nvme")))
    assert nitro.ena_support and nitro.volume_size_gib == 1
    ena_only = load_image(_ami(test_disk, tmp_path / "ena", arch="x86_64", drivers=("ena",)))
    assert ena_only.manifest["ena_support"] and not ena_only.ena_support  # a Nitro instance would find no disk
    data = json.loads(nitro.manifest_path.read_text())
    for bad in (0, 0.5, "1", True):
        data["volume_size_gib"] = bad
        nitro.manifest_path.write_text(json.dumps(data))
        with pytest.raises(UploadError, match="volume_size_gib must be a whole number of GiB, at least 1"):
            load_image(nitro.manifest_path).volume_size_gib
