"""``appbuild upload ami``: turn an ``ami`` image (raw disk + manifest) into an EC2 AMI.

The ``ami`` format writes ``NAME.raw`` and ``NAME.ami.json`` (architecture, boot mode,
root device, the disk's file name, size and sha256, the EBS volume size in whole GiB,
and what the image's kernel drives: ``ena_support``, ``nvme_support``, ``xen_support``).
:func:`upload_ami` reads the manifest, refuses an image no EC2 instance could boot (a
32-bit AMI runs only on Xen instance types, so its kernel needs Xen's drivers), checks
the disk against it and registers it with any EC2/S3-compatible endpoint, in one of two
ways:

``import`` (default; what AWS documents for VM images)
    multipart upload of the raw disk to S3, ``ImportSnapshot`` from the bucket key,
    poll ``DescribeImportSnapshotTasks`` until the snapshot is ready (or the timeout
    passes: then the import task is cancelled), delete the S3 object, ``RegisterImage``
    (hvm, architecture, ``BootMode`` legacy-bios, root device, ``EnaSupport`` when the
    image has both ENA and NVMe drivers: Nitro instances need both) and tag image and
    snapshot.

``ebs-direct`` (no S3, no import role; how AWS's ``coldsnap`` works)
    ``StartSnapshot``, ``PutSnapshotBlock`` for every 512 KiB block of the disk that is
    not all zeros (in parallel), ``CompleteSnapshot``, wait for the snapshot, then
    ``RegisterImage`` and tags as above.

Errors from the endpoint are reported as :class:`UploadError` naming the API call.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from appbuilder.core.errors import AppbuildError
from appbuilder.core.fileio import sha256_file

EBS_BLOCK = 512 * 1024  # the EBS direct APIs take exactly this much per block
GIB = 1 << 30
METHODS = ("import", "ebs-direct")


class UploadError(AppbuildError):
    """The upload or registration failed; the message names the step and the endpoint's answer."""


@dataclass(frozen=True)
class AmiImage:
    """An ``ami`` image on disk: its manifest and the raw disk the manifest names."""

    manifest_path: Path
    manifest: dict
    disk: Path

    @property
    def name(self) -> str:
        return self.manifest["name"]

    @property
    def volume_size_gib(self) -> int:
        """The EBS volume's size: a whole number of GiB, at least the disk's size rounded up."""
        needed = max(1, -(-self.manifest["disk"]["size"] // GIB))
        given = self.manifest.get("volume_size_gib")
        if given is None:
            return needed
        if not isinstance(given, int) or isinstance(given, bool) or given < needed:
            raise UploadError(f"{self.manifest_path.name}: volume_size_gib must be a whole number of GiB, at least "
                              f"{needed} for a disk of {self.manifest['disk']['size']} bytes (got {given!r})")
        return given

    @property
    def ena_support(self) -> bool:
        """Register with ``EnaSupport``: the image drives the ENA and NVMe (Nitro instances have both)."""
        m = self.manifest
        return bool(m["ena_support"]) and bool(m.get("nvme_support", True))

    @property
    def tags(self) -> list[dict]:
        m = self.manifest
        return [{"Key": "Name", "Value": m["name"]}, {"Key": "appbuild:group", "Value": m["group"]},
                {"Key": "appbuild:version", "Value": m["version"]}, {"Key": "appbuild:arch", "Value": m["arch"]},
                {"Key": "appbuild:sha256", "Value": m["disk"]["sha256"]}]


@dataclass(frozen=True)
class UploadResult:
    image_id: str
    snapshot_id: str
    name: str
    method: str


REQUIRED = ("name", "description", "group", "version", "arch", "architecture", "boot_mode", "root_device_name",
            "virtualization_type", "ena_support", "disk")


def load_image(path: Path) -> AmiImage:
    """The ami image named by *path*: an ``*.ami.json`` manifest or the directory holding one."""
    path = Path(path)
    if path.is_dir():
        found = sorted(path.glob("*.ami.json"))
        if not found:
            raise UploadError(f"no AMI manifest (*.ami.json) in {path}; build the image with --format ami")
        if len(found) > 1:
            raise UploadError(f"{path} holds {len(found)} AMI manifests ({', '.join(p.name for p in found)}); "
                              "name the one to upload")
        path = found[0]
    if not path.is_file():
        raise UploadError(f"no AMI manifest at {path}")
    try:
        manifest = json.loads(path.read_text())
    except ValueError as exc:
        raise UploadError(f"{path}: not valid JSON: {exc}") from None
    missing = [k for k in REQUIRED if k not in manifest]
    if missing:
        raise UploadError(f"{path}: not an appbuild AMI manifest (missing {', '.join(missing)})")
    disk = path.parent / manifest["disk"]["file"]
    if not disk.is_file():
        raise UploadError(f"{path} names the disk {disk.name}, which is not beside it")
    return AmiImage(path, manifest, disk)


def check_bootable(image: AmiImage) -> None:
    """Refuse an AMI no EC2 instance could boot. EC2 runs 32-bit (i386) AMIs only on its Xen
    instance types (Nitro is 64-bit only), where the disk and network are Xen's: an i386
    image whose kernel has no Xen support (the manifest's ``xen_support``: CONFIG_XEN and
    the xen_blkfront and xen_netfront modules) would find neither."""
    m = image.manifest
    if m["architecture"] == "i386" and m.get("xen_support") is False:
        raise UploadError(
            f"{image.manifest_path.name}: a 32-bit AMI runs only on EC2's Xen instance types, and this image's "
            "kernel has no Xen support (no xen_blkfront or xen_netfront module, or no CONFIG_XEN): it would find "
            "no disk and no network there; build the x86 image with a kernel that has them (Debian's "
            "linux-image-686-pae), or upload the x86_64 image")


def verify_disk(image: AmiImage) -> None:
    """The disk has the size and sha256 the manifest records."""
    want = image.manifest["disk"]
    size = image.disk.stat().st_size
    if size != want["size"]:
        raise UploadError(f"{image.disk} is {size} bytes; the manifest says {want['size']}")
    digest = sha256_file(image.disk)
    if digest != want["sha256"]:
        raise UploadError(f"{image.disk} has sha256 {digest}; the manifest says {want['sha256']}")


# ---------------------------------------------------------------- clients


@dataclass(frozen=True)
class Endpoint:
    """Where to talk to and as whom; None endpoints mean AWS's own for the region."""

    region: str
    ec2: str | None = None
    s3: str | None = None
    ebs: str | None = None
    access_key: str | None = None
    secret_key: str | None = None

    def clients(self):
        """(ec2, s3, ebs) boto3 clients."""
        import boto3
        from botocore.config import Config

        session = boto3.session.Session(aws_access_key_id=self.access_key, aws_secret_access_key=self.secret_key,
                                        region_name=self.region)
        cfg = Config(retries={"max_attempts": 5, "mode": "standard"}, s3={"addressing_style": "path"})
        return (session.client("ec2", endpoint_url=self.ec2, config=cfg),
                session.client("s3", endpoint_url=self.s3 or self.ec2, config=cfg),
                session.client("ebs", endpoint_url=self.ebs or self.ec2, config=cfg))


class _Step:
    """Turns botocore errors raised in a step into an UploadError naming the step."""

    def __init__(self, what: str):
        self.what = what

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc is None or isinstance(exc, (AppbuildError, KeyboardInterrupt)):
            return False
        from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError
        from botocore.parsers import ResponseParserError

        if isinstance(exc, NoCredentialsError):
            raise UploadError("no AWS credentials: give --access-key and --secret-key, or set "
                              "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY") from None
        if isinstance(exc, ClientError):
            err = exc.response.get("Error", {})
            code, msg = err.get("Code", "?"), err.get("Message", str(exc))
            hint = ""
            if code in ("NotImplemented", "InvalidAction") or "not yet implemented" in str(msg).lower() \
                    or exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") == 501:
                hint = " (this endpoint does not implement it; --method ebs-direct avoids ImportSnapshot)"
            raise UploadError(f"{self.what} failed: {code}: {msg}{hint}") from None
        if isinstance(exc, ResponseParserError):  # e.g. an HTML "500 Internal Server Error" page
            raise UploadError(f"{self.what} failed: the endpoint did not answer with an API response "
                              f"(an internal error; perhaps it does not implement {self.what}; "
                              "--method ebs-direct avoids ImportSnapshot)") from None
        if isinstance(exc, BotoCoreError):
            raise UploadError(f"{self.what} failed: {exc}") from None
        return False


# ---------------------------------------------------------------- upload


def upload_ami(
    image: AmiImage,
    endpoint: Endpoint,
    *,
    bucket: str | None = None,
    method: str = "import",
    key: str | None = None,
    name: str | None = None,
    role_name: str | None = None,
    create_bucket: bool = False,
    keep_object: bool = False,
    timeout: float = 3600.0,
    poll: float = 10.0,
    jobs: int = 8,
    part_size: int = 64 << 20,
    progress: Callable[[str], None] | None = None,
    clients=None,
) -> UploadResult:
    """Register *image* as an AMI at *endpoint*; returns the AMI and snapshot ids.

    *clients* (ec2, s3, ebs) replaces the boto3 clients made from *endpoint* (tests).
    """
    say = progress or (lambda line: None)
    if method not in METHODS:
        raise UploadError(f"unknown upload method {method!r}; valid: {', '.join(METHODS)}")
    if method == "import" and not bucket:
        raise UploadError("--bucket is needed to upload the disk for ImportSnapshot")
    check_bootable(image)
    image.volume_size_gib  # a bad size fails here, before anything is uploaded
    ec2, s3, ebs = clients or endpoint.clients()
    say(f"checking {image.disk.name} against {image.manifest_path.name}")
    verify_disk(image)
    if method == "import":
        snapshot_id = _snapshot_by_import(image, ec2, s3, bucket=bucket, key=key, role_name=role_name,
                                          create_bucket=create_bucket, keep_object=keep_object, timeout=timeout,
                                          poll=poll, jobs=jobs, part_size=part_size, say=say)
    else:
        snapshot_id = _snapshot_by_ebs_direct(image, ec2, ebs, timeout=timeout, poll=poll, jobs=jobs, say=say)
    image_id = register(image, ec2, snapshot_id, name=name)
    say(f"registered {image_id} from {snapshot_id}")
    return UploadResult(image_id, snapshot_id, name or image.name, method)


def _snapshot_by_import(image: AmiImage, ec2, s3, *, bucket, key, role_name, create_bucket, keep_object, timeout,
                        poll, jobs, part_size, say) -> str:
    from boto3.s3.transfer import TransferConfig

    key = key or f"appbuild/{image.disk.name}"
    if create_bucket:
        with _Step(f"creating bucket {bucket}"):
            try:
                s3.head_bucket(Bucket=bucket)
            except Exception:
                region = s3.meta.region_name
                extra = {} if region in (None, "us-east-1") else {
                    "CreateBucketConfiguration": {"LocationConstraint": region}}
                s3.create_bucket(Bucket=bucket, **extra)
    size = image.disk.stat().st_size
    say(f"uploading {image.disk.name} ({size / (1 << 20):.0f} MiB) to s3://{bucket}/{key}")
    part_size = max(part_size, 5 << 20, -(-size // 10000))  # S3: parts of 5 MiB or more, at most 10000
    config = TransferConfig(multipart_threshold=5 << 20, multipart_chunksize=part_size, max_concurrency=jobs)
    with _Step(f"uploading to s3://{bucket}/{key}"):
        s3.upload_file(str(image.disk), bucket, key, Config=config)
    task_id = None
    try:
        with _Step("ImportSnapshot"):
            args = dict(
                Description=image.manifest["description"][:255],
                DiskContainer={"Description": image.name, "Format": "RAW",
                               "UserBucket": {"S3Bucket": bucket, "S3Key": key}},
                TagSpecifications=[{"ResourceType": "import-snapshot-task", "Tags": image.tags}],
            )
            if role_name:
                args["RoleName"] = role_name
            task_id = ec2.import_snapshot(**args)["ImportTaskId"]
        say(f"import task {task_id} started")
        snapshot_id = _wait_import(ec2, task_id, timeout=timeout, poll=poll, say=say)
        task_id = None  # finished: nothing to cancel
        return snapshot_id
    finally:
        if task_id is not None:  # failed, timed out or interrupted while importing
            try:
                ec2.cancel_import_task(ImportTaskId=task_id, CancelReason="appbuild upload stopped")
            except Exception:
                pass
        if not keep_object:
            try:
                s3.delete_object(Bucket=bucket, Key=key)
                say(f"deleted s3://{bucket}/{key}")
            except Exception as exc:  # do not hide the real outcome
                say(f"warning: could not delete s3://{bucket}/{key}: {exc}")


def _wait_import(ec2, task_id: str, *, timeout: float, poll: float, say) -> str:
    deadline = time.monotonic() + timeout
    last = None
    while True:
        with _Step("DescribeImportSnapshotTasks"):
            tasks = ec2.describe_import_snapshot_tasks(ImportTaskIds=[task_id])["ImportSnapshotTasks"]
        detail = tasks[0]["SnapshotTaskDetail"] if tasks else {}
        status = detail.get("Status", "unknown")
        if status == "completed":
            return detail["SnapshotId"]
        if status in ("deleting", "deleted", "cancelled", "error"):
            raise UploadError(f"import task {task_id} ended {status}: {detail.get('StatusMessage', 'no message')}")
        now = (status, detail.get("Progress"), detail.get("StatusMessage"))
        if now != last:
            say(f"import {task_id}: {status} {detail.get('Progress', '')}% {detail.get('StatusMessage', '')}".rstrip())
            last = now
        if time.monotonic() + poll > deadline:
            raise UploadError(f"import task {task_id} did not finish within {timeout:.0f} s (last status {status})")
        time.sleep(poll)


def _snapshot_by_ebs_direct(image: AmiImage, ec2, ebs, *, timeout, poll, jobs, say) -> str:
    with _Step("StartSnapshot"):
        snap = ebs.start_snapshot(VolumeSize=image.volume_size_gib, Description=image.manifest["description"][:255],
                                  Tags=image.tags)
    snapshot_id = snap["SnapshotId"]
    say(f"snapshot {snapshot_id} started; writing the non-zero 512 KiB blocks of {image.disk.name}")
    zero = bytes(EBS_BLOCK)

    def put(index: int, data: bytes) -> None:
        checksum = base64.b64encode(hashlib.sha256(data).digest()).decode()
        with _Step(f"PutSnapshotBlock {index}"):
            ebs.put_snapshot_block(SnapshotId=snapshot_id, BlockIndex=index, BlockData=data, DataLength=len(data),
                                   Checksum=checksum, ChecksumAlgorithm="SHA256")

    written = 0
    with ThreadPoolExecutor(max_workers=jobs) as pool, open(image.disk, "rb") as f:
        futures = []
        index = 0
        while block := f.read(EBS_BLOCK):
            if len(block) < EBS_BLOCK:
                block += bytes(EBS_BLOCK - len(block))
            if block != zero:
                futures.append(pool.submit(put, index, block))
                written += 1
            index += 1
            if len(futures) >= 4 * jobs:  # bound the memory held by queued blocks
                futures.pop(0).result()
        for fut in futures:
            fut.result()
    with _Step("CompleteSnapshot"):
        ebs.complete_snapshot(SnapshotId=snapshot_id, ChangedBlocksCount=written)
    say(f"wrote {written} of {index} blocks; waiting for {snapshot_id}")
    deadline = time.monotonic() + timeout
    while True:
        with _Step("DescribeSnapshots"):
            state = ec2.describe_snapshots(SnapshotIds=[snapshot_id])["Snapshots"][0]["State"]
        if state == "completed":
            return snapshot_id
        if state == "error":
            raise UploadError(f"snapshot {snapshot_id} failed")
        if time.monotonic() + poll > deadline:
            raise UploadError(f"snapshot {snapshot_id} was not completed within {timeout:.0f} s (state {state})")
        time.sleep(poll)


def register(image: AmiImage, ec2, snapshot_id: str, *, name: str | None = None) -> str:
    """RegisterImage from *snapshot_id* as the manifest describes; tag image and snapshot."""
    m = image.manifest
    root = m["root_device_name"]
    with _Step("RegisterImage"):
        image_id = ec2.register_image(
            Name=name or m["name"],
            Description=m["description"][:255],
            Architecture=m["architecture"],
            RootDeviceName=root,
            VirtualizationType=m["virtualization_type"],
            EnaSupport=image.ena_support,
            BootMode=m["boot_mode"],
            BlockDeviceMappings=[{"DeviceName": root, "Ebs": {
                "SnapshotId": snapshot_id, "DeleteOnTermination": True,
                "VolumeType": m.get("volume_type", "gp3"), "VolumeSize": image.volume_size_gib}}],
        )["ImageId"]
    with _Step("CreateTags"):
        ec2.create_tags(Resources=[image_id, snapshot_id], Tags=image.tags)
    return image_id


def endpoint_from_env(region: str | None, ec2: str | None, s3: str | None, ebs: str | None,
                      access_key: str | None, secret_key: str | None) -> Endpoint:
    """An Endpoint from command-line values, falling back to the AWS_* environment."""
    region = region or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
    if not region:
        raise UploadError("say which region: --region, or set AWS_REGION")
    return Endpoint(region=region, ec2=ec2, s3=s3, ebs=ebs,
                    access_key=access_key or os.environ.get("AWS_ACCESS_KEY_ID"),
                    secret_key=secret_key or os.environ.get("AWS_SECRET_ACCESS_KEY"))
