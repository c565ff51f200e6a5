"""What an upstream package becomes before it is committed: a :class:`Capsule`."""

from __future__ import annotations

from dataclasses import dataclass, field

from appbuilder.core.errors import SourceError
from appbuilder.repository.deps import Dependency
from appbuilder.repository.trove import FileEntry
from appbuilder.repository.versions import Flavor


class CapsuleError(SourceError):
    """An upstream package cannot be imported: unreadable, corrupt, unsafe or untrusted."""


@dataclass
class Capsule:
    """One upstream package, read and checked, its contents already in the content store."""

    kind: str  # "rpm" or "deb"
    name: str
    upstream: str  # the trove's upstream version: [epoch:]version-release, or the Debian version
    flavor: Flavor
    file_name: str
    file_sha256: str
    file_size: int
    source_id: str  # the upstream source build it comes from (shared by its architectures)
    files: list[FileEntry] = field(default_factory=list)
    provides: set[Dependency] = field(default_factory=set)
    requires: set[Dependency] = field(default_factory=set)
    info: dict = field(default_factory=dict)  # the component's info
    upstream_name: str = ""  # NEVRA, or package_version_arch
    stored_bytes: int = 0  # uncompressed bytes of content read from the payload

    @property
    def component(self) -> str:
        return f"{self.name}:{self.kind}"
