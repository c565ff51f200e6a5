"""What the command modules share: architecture lists and opening the repository."""

from __future__ import annotations

from appbuilder.core.arch import ARCHES, Arch, get_arch
from appbuilder.core.settings import Settings


def arches(value: str) -> list[Arch]:
    """``x86_64``, ``x86``, a comma list, or ``all``."""
    if value == "all":
        return list(ARCHES.values())
    return [get_arch(v) for v in value.split(",")]


def open_repo(settings: Settings):
    from appbuilder.repository.repo import Repository

    return Repository(settings.repository, settings.label)
