"""Where releases are published: a directory (this module), or S3-compatible object
storage (``s3dest.py``).

``open_destination("DIR")`` or ``open_destination("s3://bucket/prefix", endpoint_url=...)``.
Both keep the same tree, so a directory served by nginx and a bucket behind a CDN look
the same to a downloader::

    index.html                        every group and its current releases
    signing-key.asc                   the public key SHA256SUMS are signed with
    GROUP/releases.json, index.html   the group's release index (release_index.py)
    GROUP/VERSION/ARCH/               images, manifest.json, SHA256SUMS, SHA256SUMS.asc

What makes publishing atomic for a reader:

* **directory**: a release is written into ``GROUP/.tmp-publish-*`` on the same file
  system, each file copied, checked against its sha256 and fsynced, and appears by one
  ``rename`` (the whole ``VERSION`` directory, or ``ARCH`` into an existing one); index
  files are replaced by rename. A failure (ENOSPC, EROFS, a bad checksum) removes the
  temporary directory and leaves the destination as it was.
* **S3**: objects become visible only complete (a PUT or a completed multipart upload);
  a release is named by nothing until the index, written last, names it. The feed is
  written with ``If-Match``/``If-None-Match`` on the ETag read under the lock, so an
  index changed meanwhile is never overwritten. On failure the objects uploaded so far
  are deleted.

Two publishers are serialised by a lock: ``flock`` on ``.appbuild-publish.lock`` for a
directory; for S3 an object ``.appbuild-publish.lock`` created with ``If-None-Match: *``
(a conditional PUT: AWS S3 since 2024, MinIO, Ceph RGW, moto). A lock object older than
its time-to-live (default an hour) is taken over with ``If-Match`` on its ETag; stores
without conditional writes cannot give this guarantee (publish from one place only).
"""

from __future__ import annotations

from pathlib import Path

from appbuilder.release.destinations.base import (  # noqa: F401  (what publishing uses)
    ChecksumError,
    Destination,
    DestinationError,
    ReleaseFile,
    content_type,
)
from appbuilder.release.destinations.directory import DirectoryDestination


def open_destination(where: str | Path, *, endpoint_url: str | None = None, region: str | None = None) -> Destination:
    """A destination from what a user typed: ``s3://bucket/prefix`` or a directory."""
    text = str(where)
    if text.startswith("s3://"):
        from appbuilder.release.destinations.s3 import S3Destination

        return S3Destination(text, endpoint_url=endpoint_url, region=region)
    if "://" in text:
        raise DestinationError(f"cannot publish to {text}: give a directory or s3://BUCKET/PREFIX")
    return DirectoryDestination(Path(text))
