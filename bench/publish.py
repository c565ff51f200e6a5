"""Benchmark: publishing a 100 MB release, to a local directory and to S3 on 127.0.0.1.

A synthetic recorded image (``--size-mb`` of random bytes: incompressible, like a
compressed qcow2) in an image store of its own, published with the real code
(``appbuilder.release.publish.publish``: checksum while copying, fsync, SHA256SUMS, a gpg
signature, the release index and the page, under the lock), each time to a fresh
destination, round-robin in the same run with its reference:

* **directory**: publish vs ``cp FILE DIR/`` of the same bytes (same file system), and
  vs ``cp`` + ``sync`` (cp does not make the copy durable; publish fsyncs every file);
* **S3** (moto's server on 127.0.0.1): publish vs a plain ``boto3 upload_file`` of the
  same file (what ``aws s3 cp`` does), default transfer settings.

Prints MB/s and the ratios publish / reference, and a JSON line.

    /tmp/v/bin/python bench/publish.py [--size-mb 100] [--reps 5]
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from _common import (  # first: puts the project on sys.path
    emit,
    interleave,
    med,
    r3,
    rmtree,
    run,
    table,
)

from appbuilder.release.publish import PublishRequest, publish
from appbuilder.release.signing import Signer
from appbuilder.store import manifest as mf
from appbuilder.store.images import ImageStore

GROUP, VERSION, ARCH = "group-bench", "1.0-1-1", "x86_64"


def make_store(root: Path, size: int) -> Path:
    """An image store holding one recorded image of *size* random bytes."""
    store = ImageStore(root)
    directory = store.directory(GROUP, VERSION, ARCH)
    directory.mkdir(parents=True)
    image = directory / f"{GROUP}-{VERSION}-{ARCH}.qcow2"
    with open(image, "wb") as f:
        left = size
        while left:
            n = min(left, 8 << 20)
            f.write(os.urandom(n))
            left -= n
    now = mf.utc_now()
    m = mf.Manifest(group=GROUP, trove=f"{GROUP}=bench@b:1/{VERSION}[is: {ARCH}]", version=f"bench@b:1/{VERSION}",
                    arch=ARCH, formats={"qcow2": [image.name]}, files=mf.file_records([image]),
                    builder=mf.builder_identity(), built=now, updated=now)
    store.record(directory, m, ["synthetic image for bench/publish.py"])
    return image


def make_key(home: Path) -> Signer:
    home.mkdir(mode=0o700)
    run(["gpg", "--batch", "--homedir", str(home), "--passphrase", "", "--quick-gen-key",
         "bench <bench@example.invalid>", "ed25519", "sign", "never"])
    return Signer("bench@example.invalid", home)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_moto(log: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                            stdout=open(log, "wb"), stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            urllib.request.urlopen(f"{url}/moto-api/", timeout=1).read(16)
            return proc, url
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"moto server did not start:\n{log.read_text()}")
            time.sleep(0.2)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size-mb", type=int, default=100)
    ap.add_argument("--reps", type=int, default=5)
    args = ap.parse_args()
    size = args.size_mb * 1000 * 1000
    for k, v in {"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench", "AWS_REGION": "us-east-1"}.items():
        os.environ[k] = v

    with tempfile.TemporaryDirectory(prefix="bench-publish-", dir=os.environ.get("TMPDIR", "/var/tmp")) as tmp:
        tmp = Path(tmp)
        image = make_store(tmp / "store", size)
        store = ImageStore(tmp / "store")
        signer = make_key(tmp / "gnupg")
        counter = iter(range(10 ** 6))

        def fresh_dir() -> Path:
            d = tmp / f"dest-{next(counter)}"
            return d

        def do_publish(dest: str, endpoint: str | None = None) -> None:
            publish(store, PublishRequest(GROUP, VERSION, dest, endpoint_url=endpoint, channel="nightly"), signer,
                    say=lambda m: None)

        def pub_dir():
            d = fresh_dir()
            do_publish(str(d))
            rmtree(d)

        def cp():
            d = fresh_dir()
            d.mkdir()
            run(["cp", str(image), str(d)])
            rmtree(d)

        def cp_sync():
            d = fresh_dir()
            d.mkdir()
            run(["cp", str(image), str(d)])
            run(["sync", "-f", str(d / image.name)])
            rmtree(d)

        local = interleave({"publish": pub_dir, "cp": cp, "cp+sync": cp_sync}, args.reps)

        moto, endpoint = start_moto(tmp / "moto.log")
        try:
            import boto3

            s3 = boto3.client("s3", endpoint_url=endpoint)
            s3.create_bucket(Bucket="bench")

            def empty_bucket():
                for page in s3.get_paginator("list_objects_v2").paginate(Bucket="bench"):
                    keys = [{"Key": o["Key"]} for o in page.get("Contents", [])]
                    if keys:
                        s3.delete_objects(Bucket="bench", Delete={"Objects": keys})

            def pub_s3():
                do_publish(f"s3://bench/p{next(counter)}", endpoint)
                empty_bucket()

            def upload():
                s3.upload_file(str(image), "bench", f"plain/{next(counter)}/{image.name}")
                empty_bucket()

            remote = interleave({"publish": pub_s3, "upload_file": upload}, args.reps)
        finally:
            moto.terminate()
            moto.wait(10)
            subprocess.run(["gpgconf", "--homedir", str(tmp / "gnupg"), "--kill", "all"], capture_output=True)

    def rate(xs):
        return size / 1e6 / med(xs)

    rows = [
        ["directory", "appbuild publish", f"{med(local['publish']):.3f}", f"{rate(local['publish']):.0f}", ""],
        ["directory", "cp", f"{med(local['cp']):.3f}", f"{rate(local['cp']):.0f}",
         f"{rate(local['publish']) / rate(local['cp']):.2f}x"],
        ["directory", "cp + sync", f"{med(local['cp+sync']):.3f}", f"{rate(local['cp+sync']):.0f}",
         f"{rate(local['publish']) / rate(local['cp+sync']):.2f}x"],
        ["s3 (moto)", "appbuild publish", f"{med(remote['publish']):.3f}", f"{rate(remote['publish']):.0f}", ""],
        ["s3 (moto)", "boto3 upload_file", f"{med(remote['upload_file']):.3f}", f"{rate(remote['upload_file']):.0f}",
         f"{rate(remote['publish']) / rate(remote['upload_file']):.2f}x"],
    ]
    print(table(["destination", "how", "median s", "MB/s", "publish / this"], rows,
                title=f"publishing a {args.size_mb} MB release, {args.reps} runs each (median)"))
    emit("publish", {
        "size_mb": args.size_mb, "reps": args.reps,
        "dir_publish_mb_s": r3(rate(local["publish"])), "dir_cp_mb_s": r3(rate(local["cp"])),
        "dir_cp_sync_mb_s": r3(rate(local["cp+sync"])),
        "dir_ratio_vs_cp": r3(rate(local["publish"]) / rate(local["cp"])),
        "dir_ratio_vs_cp_sync": r3(rate(local["publish"]) / rate(local["cp+sync"])),
        "s3_publish_mb_s": r3(rate(remote["publish"])), "s3_upload_file_mb_s": r3(rate(remote["upload_file"])),
        "s3_ratio_vs_upload_file": r3(rate(remote["publish"]) / rate(remote["upload_file"])),
    })


if __name__ == "__main__":
    main()
