"""The tag list, ``.cvmfstags``: names for revisions that stay.

A tag names one revision for good: ``appbuild fs publish --tag 1.0-1-2`` (or
``publish-group``, which tags with the group version) records the name, the revision,
its root catalog's hash and size and the time, and a client can mount that name
(``cvmfs2 -o tag=1.0-1-2``) long after newer revisions were published. Garbage
collection (``appbuild fs gc``) keeps every tagged revision. The list lies next to
``.cvmfspublished`` and is signed the same way (Ed25519 over every byte before the
``--`` line)::

    N<repository>
    S<the revision of the manifest it was written with>
    T<unix time signed>
    E<unix time it expires>
    K<key id>
    G<name> <revision> <catalog hash> <catalog size> <unix time tagged>
    G...        (one line per tag, revision ascending; the last is the newest)
    --
    <128 hex digits>

Tag names are 1 to 128 of ``A-Z a-z 0-9 . _ + ~ -``, starting with a letter or digit,
and never ``latest`` (a client's word for "the newest tag"). A tag is immutable:
naming another catalog with a name already taken is refused. The list is written
atomically after the catalog objects it names and before the manifest; like the
manifest it expires (``appbuild fs resign`` signs both again) and a client refuses a
list with a lower ``S`` (or the same ``S`` and a lower ``T``) than one it has seen.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field, replace

from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from appbuilder.core.errors import AppbuildError
from appbuilder.fs import keys
from appbuilder.fs.manifest import SEPARATOR, split_signed, utc
from appbuilder.fs.objects import is_hash

TAGS_NAME = ".cvmfstags"
LATEST = "latest"
TAG_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+~-]{0,127}")


class TagListError(AppbuildError):
    """A tag list cannot be parsed, fails its checks, or a tag cannot be added."""


def check_tag_name(name: str) -> str:
    """*name*, if it may name a tag."""
    if not isinstance(name, str) or not TAG_NAME.fullmatch(name):
        raise TagListError(f"bad tag name {name!r}: 1 to 128 of letters, digits, '.', '_', '+', '~', '-', "
                           f"starting with a letter or digit (like 1.0-1-2)")
    if name == LATEST:
        raise TagListError("'latest' cannot name a tag: clients use it for the newest tag")
    return name


@dataclass(frozen=True)
class Tag:
    name: str
    revision: int
    catalog: str  # hash of the revision's root catalog object
    catalog_size: int  # its size in bytes (compressed, as stored)
    timestamp: int  # unix time it was tagged

    def line(self) -> str:
        return f"G{self.name} {self.revision} {self.catalog} {self.catalog_size} {self.timestamp}"


def _order(tag: Tag) -> tuple:
    return tag.revision, tag.timestamp, tag.name


@dataclass(frozen=True)
class TagList:
    repository: str
    revision: int  # the manifest revision it was written with
    timestamp: int  # unix time signed
    expires: int  # unix time it expires
    tags: tuple[Tag, ...] = field(default_factory=tuple)
    key_id: str = ""

    def get(self, name: str) -> Tag | None:
        """The tag *name* (``latest``: the newest), or None."""
        if name == LATEST:
            return self.newest
        return next((t for t in self.tags if t.name == name), None)

    @property
    def newest(self) -> Tag | None:
        return max(self.tags, key=_order) if self.tags else None

    def names(self) -> list[str]:
        return [t.name for t in self.tags]

    def with_tag(self, tag: Tag) -> TagList:
        """This list with *tag* added; the same tag again changes nothing; the name taken for
        another catalog is refused (tags are immutable)."""
        check_tag_name(tag.name)
        old = self.get(tag.name)
        if old is not None:
            if old.catalog == tag.catalog:
                return self
            raise TagListError(f"tag {tag.name} of {self.repository} is revision {old.revision} (catalog "
                               f"{old.catalog[:16]}..., tagged {utc(old.timestamp)}); tags are immutable: "
                               f"publish this tree under a new tag")
        return replace(self, tags=tuple(sorted((*self.tags, tag), key=_order)))

    def fields(self) -> bytes:
        lines = [f"N{self.repository}", f"S{self.revision}", f"T{self.timestamp}", f"E{self.expires}",
                 f"K{self.key_id}", *(t.line() for t in sorted(self.tags, key=_order))]
        return ("\n".join(lines) + "\n").encode()


def render(taglist: TagList, private: Ed25519PrivateKey) -> bytes:
    """The signed tag list (the key id is the signing key's; tags in revision order)."""
    body = replace(taglist, key_id=keys.key_id(private.public_key())).fields()
    return body + SEPARATOR + keys.sign(private, body).hex().encode() + b"\n"


def _split(data: bytes) -> tuple[bytes, bytes]:
    return split_signed(data, "tag list", TagListError)


def _number(text: str, what: str) -> int:
    if not text.isdigit() or not text.isascii():
        raise TagListError(f"the tag list's {what} {text!r} is not a number")
    return int(text)


def parse(data: bytes) -> TagList:
    """Parse a tag list (the signature is not checked here: see :func:`verify`)."""
    body, _ = _split(data)
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise TagListError("the tag list is not UTF-8 text") from None
    values: dict[str, str] = {}
    tags: list[Tag] = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line:
            raise TagListError(f"tag list line {number} is empty")
        key, value = line[0], line[1:]
        if key == "G":
            parts = value.split(" ")
            if len(parts) != 5:
                raise TagListError(f"tag list line {number}: a tag is 'NAME REVISION CATALOG SIZE TIME', "
                                   f"not {value!r}")
            name, revision, catalog, size, when = parts
            try:
                check_tag_name(name)
            except TagListError as exc:
                raise TagListError(f"tag list line {number}: {exc}") from None
            if not is_hash(catalog):
                raise TagListError(f"tag list line {number}: catalog {catalog!r} is not a sha256 hash")
            if any(t.name == name for t in tags):
                raise TagListError(f"tag list line {number}: tag {name} appears twice")
            tags.append(Tag(name, _number(revision, "revision"), catalog, _number(size, "catalog size"),
                            _number(when, "tag time")))
        elif key in values:
            raise TagListError(f"tag list line {number}: field {key} appears twice")
        else:
            values[key] = value
    try:
        taglist = TagList(values["N"], _number(values["S"], "revision"), _number(values["T"], "signing time"),
                          _number(values["E"], "expiry time"), tuple(tags), values["K"])
    except KeyError as exc:
        raise TagListError(f"the tag list has no field {exc.args[0]!r}") from None
    if [_order(t) for t in tags] != sorted(_order(t) for t in tags):
        raise TagListError("the tag list's tags are not in revision order")
    return taglist


def verify(data: bytes, trusted_keys: list[Ed25519PublicKey], repository: str, now: int | None = None, *,
           check_expires: bool = True) -> TagList:
    """The tag list in *data*, if one of *trusted_keys* signed it, it is *repository*'s and it has
    not expired by *now* (default: the current time; ``check_expires=False``: the publisher
    re-signing or extending its own list, which may have expired)."""
    taglist = parse(data)
    body, signature = _split(data)
    by_id = {keys.key_id(k): k for k in trusted_keys}
    key = by_id.get(taglist.key_id)
    if key is None:
        raise TagListError(f"the tag list is signed by an unknown key {taglist.key_id or '(none)'} "
                           f"(trusted: {', '.join(sorted(by_id)) or 'none'})")
    if not keys.verify(key, signature, body):
        raise TagListError(f"bad signature: the tag list does not verify with key {taglist.key_id}")
    if taglist.repository != repository:
        raise TagListError(f"the tag list is for repository {taglist.repository!r}, not {repository!r}")
    if check_expires:
        check_expiry(taglist, now)
    return taglist


def check_expiry(taglist: TagList, now: int | None = None) -> None:
    now = int(time.time()) if now is None else now
    if now >= taglist.expires:
        raise TagListError(f"the tag list of {taglist.repository} (revision {taglist.revision}) expired at "
                           f"{utc(taglist.expires)}; the publisher must re-sign it ('appbuild fs resign')")
