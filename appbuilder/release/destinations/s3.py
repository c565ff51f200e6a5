"""Publishing to S3-compatible object storage (AWS S3, MinIO, Ceph RGW; moto in the tests).

``s3://BUCKET/PREFIX`` holds the same tree as a directory destination (see
``destination.py``). Objects become visible only complete (a PUT, or a completed
multipart upload through boto3's transfer manager); a release is named by nothing until
the release index, written last, names it; the feed is written with ``If-Match`` (or
``If-None-Match: *`` when new) on the ETag read under the lock, so an index that changed
meanwhile is never overwritten. Release objects carry ``Cache-Control: immutable`` and
their sha256 as metadata; index objects ``no-cache``.

The lock is an object created with ``If-None-Match: *``; one older than ``LOCK_TTL`` is
taken over with ``If-Match`` on its ETag. The endpoint comes from ``--endpoint-url``,
``publish.endpoint_url`` in repo/config.yaml, or ``AWS_ENDPOINT_URL(_S3)``; credentials
and region as boto3 finds them.
"""

from __future__ import annotations

import json
import os
import socket
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Iterator

from appbuilder.core.fileio import sha256_file
from appbuilder.release.destinations.base import (
    IMMUTABLE,
    LOCK_NAME,
    NO_CACHE,
    ChecksumError,
    Destination,
    DestinationError,
    ReleaseFile,
    content_type,
)
from appbuilder.store.manifest import utc_now


class S3Destination(Destination):
    LOCK_TTL = 3600.0

    def __init__(self, url: str, *, endpoint_url: str | None = None, region: str | None = None):
        import boto3
        from boto3.s3.transfer import TransferConfig
        from botocore.config import Config

        rest = url[len("s3://"):]
        self.bucket, _, prefix = rest.partition("/")
        if not self.bucket:
            raise DestinationError(f"bad destination {url!r}: expected s3://BUCKET[/PREFIX]")
        self.prefix = prefix.strip("/")
        self.url = f"s3://{self.bucket}/{self.prefix}".rstrip("/")
        self.endpoint_url = endpoint_url or os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
        region = region or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
        self.s3 = boto3.client("s3", endpoint_url=self.endpoint_url, region_name=region,
                               config=Config(retries={"max_attempts": 5, "mode": "standard"}))
        self.transfer = TransferConfig()  # boto3's: 8 MiB parts, 10 at once (what `aws s3 cp` does)
        self._etags: dict[str, str | None] = {}

    def key(self, rel: str) -> str:
        return f"{self.prefix}/{rel}" if self.prefix else rel

    def _fail(self, exc: Exception, doing: str) -> DestinationError:
        from botocore.exceptions import ClientError, EndpointConnectionError

        if isinstance(exc, ClientError):
            code = exc.response.get("Error", {}).get("Code", "")
            what = {"NoSuchBucket": "does not exist", "AccessDenied": "is not writable (access denied)",
                    "AllAccessDisabled": "is not writable (access disabled)",
                    "QuotaExceeded": "is full (quota exceeded)"}.get(code, f"answered {code or exc}")
            return DestinationError(f"{self.url}: {doing}: the bucket {what}; nothing was changed there")
        if isinstance(exc, EndpointConnectionError):
            return DestinationError(f"{self.url}: {doing}: cannot reach {self.endpoint_url or 'S3'}; nothing was changed")
        return DestinationError(f"{self.url}: {doing}: {exc}; nothing was changed there")

    @staticmethod
    def _code(exc: Exception) -> str:
        return getattr(exc, "response", {}).get("Error", {}).get("Code", "")

    # -- lock

    @contextmanager
    def lock(self, timeout: float) -> Iterator[None]:
        from botocore.exceptions import ClientError

        key = self.key(LOCK_NAME)
        token = uuid.uuid4().hex
        body = json.dumps({"token": token, "pid": os.getpid(), "host": socket.gethostname(),
                           "since": utc_now(), "epoch": time.time()}).encode()
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.s3.put_object(Bucket=self.bucket, Key=key, Body=body, IfNoneMatch="*")
                break
            except ClientError as exc:
                if self._code(exc) not in ("PreconditionFailed", "ConditionalRequestConflict"):
                    raise self._fail(exc, "taking the publish lock") from None
            holder, etag = self._lock_holder(key)
            if holder is not None and time.time() - float(holder.get("epoch", 0)) > self.LOCK_TTL:
                try:  # a stale lock: take it over, unless someone else just did
                    self.s3.put_object(Bucket=self.bucket, Key=key, Body=body, IfMatch=etag)
                    break
                except ClientError:
                    pass
            if time.monotonic() >= deadline:
                who = (f"pid {holder.get('pid')} on {holder.get('host')} since {holder.get('since')}"
                       if holder else "another process")
                raise DestinationError(f"another publish to {self.url} is running ({who}); nothing was changed. "
                                       f"Try again when it has finished.")
            time.sleep(0.3)
        try:
            yield
        finally:
            holder, _ = self._lock_holder(key)
            if holder and holder.get("token") == token:
                self.s3.delete_object(Bucket=self.bucket, Key=key)

    def _lock_holder(self, key: str) -> tuple[dict | None, str | None]:
        from botocore.exceptions import ClientError

        try:
            obj = self.s3.get_object(Bucket=self.bucket, Key=key)
            return json.loads(obj["Body"].read()), obj["ETag"]
        except (ClientError, ValueError):
            return None, None

    # -- reading and writing

    def read(self, rel: str) -> bytes | None:
        from botocore.exceptions import ClientError

        try:
            obj = self.s3.get_object(Bucket=self.bucket, Key=self.key(rel))
        except ClientError as exc:
            if self._code(exc) in ("NoSuchKey", "404"):
                self._etags[rel] = None
                return None
            raise self._fail(exc, f"reading {rel}") from None
        self._etags[rel] = obj["ETag"]
        return obj["Body"].read()

    def _put(self, rel: str, data: bytes, cache: str, **conditions) -> None:
        self.s3.put_object(Bucket=self.bucket, Key=self.key(rel), Body=data, ContentType=content_type(rel),
                           CacheControl=cache, **conditions)

    def write_index(self, items: list[tuple[str, bytes]], *, guard: str | None = None) -> None:
        from botocore.exceptions import ClientError

        for i, (rel, data) in enumerate(items):
            conditions = {}
            if rel == guard and guard in self._etags:
                etag = self._etags[guard]
                conditions = {"IfMatch": etag} if etag else {"IfNoneMatch": "*"}
            try:
                self._put(rel, data, NO_CACHE, **conditions)
            except ClientError as exc:
                if self._code(exc) in ("PreconditionFailed", "ConditionalRequestConflict"):
                    raise DestinationError(f"{self.url}/{rel} was changed by someone else while publishing "
                                           f"(a publisher that ignores the lock?)", partial=i > 0) from None
                error = self._fail(exc, f"writing {rel}")
                error.partial = i > 0
                raise error from None
            if rel == guard:
                self._etags.pop(guard, None)

    def place(self, group: str, version: str, arches: dict[str, list[ReleaseFile]]) -> list[str]:
        from botocore.exceptions import BotoCoreError, ClientError

        placed: list[str] = []
        try:
            for arch, files in arches.items():
                for f in files:
                    rel = f"{group}/{version}/{arch}/{f.name}"
                    if f.source is not None:
                        size = f.source.stat().st_size
                        if size != f.size:
                            raise ChecksumError(f"{f.source} has {size} bytes, but its manifest records {f.size}")
                        # hash while uploading: the object is named by no index until the checksum held
                        with ThreadPoolExecutor(1) as pool:
                            hashing = pool.submit(sha256_file, f.source)
                            placed.append(rel)
                            self.s3.upload_file(str(f.source), self.bucket, self.key(rel), Config=self.transfer,
                                                ExtraArgs={"ContentType": content_type(f.name),
                                                           "CacheControl": IMMUTABLE, "Metadata": {"sha256": f.sha256}})
                            actual = hashing.result()
                        if actual != f.sha256:
                            raise ChecksumError(f"{f.source} no longer matches its recorded checksum: the manifest "
                                                f"records sha256 {f.sha256}, the file has {actual}")
                    else:
                        placed.append(rel)
                        self._put(rel, f.data, IMMUTABLE)
            return placed
        except (ClientError, BotoCoreError) as exc:
            self.undo(placed)
            raise self._fail(exc, f"uploading {group}/{version}") from None
        except BaseException:
            self.undo(placed)
            raise

    def undo(self, placed: list[str]) -> None:
        keys = [self.key(rel) for rel in placed]
        for i in range(0, len(keys), 1000):
            batch = [{"Key": k} for k in keys[i:i + 1000]]
            try:
                self.s3.delete_objects(Bucket=self.bucket, Delete={"Objects": batch, "Quiet": True})
            except Exception:  # best effort: the objects are named by no index
                pass

    def _list(self, prefix: str, delimiter: str | None = None) -> Iterator[dict]:
        paginator = self.s3.get_paginator("list_objects_v2")
        kwargs = {"Bucket": self.bucket, "Prefix": prefix}
        if delimiter:
            kwargs["Delimiter"] = delimiter
        for page in paginator.paginate(**kwargs):
            yield page

    def _exists(self, rel: str) -> bool:
        from botocore.exceptions import ClientError

        try:
            self.s3.head_object(Bucket=self.bucket, Key=self.key(rel))
            return True
        except ClientError:
            return False

    def remove(self, group: str, version: str) -> None:
        rels = []
        base = self.key(f"{group}/{version}/")
        for page in self._list(base):
            rels += [obj["Key"] for obj in page.get("Contents", [])]
        self.undo([k[len(self.key("")):] for k in rels])

    def groups(self) -> list[str]:
        base = self.key("")
        out = []
        for page in self._list(base, "/"):
            for p in page.get("CommonPrefixes", []):
                name = p["Prefix"][len(base):].strip("/")
                if name and self._exists(f"{name}/releases.json"):
                    out.append(name)
        return sorted(out)
