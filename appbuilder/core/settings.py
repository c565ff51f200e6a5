"""Where appbuild finds its recipes, repository, caches and image store.

A *workspace* is a directory holding ``recipes/``, ``groups/`` and ``repo/config.yaml``
(appbuild looks upward from the current directory for it, as git does). Runtime data
lives under ``repo/`` and ``images/`` and is not tracked by git. Every location can be
moved with an environment variable, which the test suite uses to work in temporary
directories:

==========================  =================================  ===========================
variable                    default                            holds
==========================  =================================  ===========================
``APPBUILD_WORKSPACE``      nearest dir with repo/config.yaml  recipes/, groups/, formats/
``APPBUILD_REPOSITORY``     ``repo/data``                      content store + SQLite index
``APPBUILD_CACHE``          ``repo/cache``                     lookaside cache, apt state
``APPBUILD_LOGS``           ``repo/logs``                      build logs of failed cooks
``APPBUILD_IMAGES``         ``images``                         the image store
==========================  =================================  ===========================
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from appbuilder.core.errors import AppbuildError

CONFIG_NAME = Path("repo") / "config.yaml"
DEFAULT_LABEL = "cernvm@cvm:2"


@dataclass(frozen=True)
class Settings:
    """Resolved locations and repository-wide options for one workspace."""

    workspace: Path
    repository: Path
    cache: Path
    logs: Path
    images: Path
    label: str = DEFAULT_LABEL
    mirrors: dict[str, list[str]] = field(default_factory=dict)
    config: dict = field(default_factory=dict)

    @property
    def recipes_dir(self) -> Path:
        return self.workspace / "recipes"

    @property
    def groups_dir(self) -> Path:
        return self.workspace / "groups"

    @property
    def formats_dir(self) -> Path:
        return self.workspace / "formats"

    @property
    def lookaside(self) -> Path:
        return self.cache / "lookaside"


def find_workspace(start: Path | None = None) -> Path:
    """The nearest directory at or above *start* holding ``repo/config.yaml``."""
    env = os.environ.get("APPBUILD_WORKSPACE")
    if env:
        return Path(env).resolve()
    here = (start or Path.cwd()).resolve()
    for candidate in (here, *here.parents):
        if (candidate / CONFIG_NAME).is_file():
            return candidate
    raise AppbuildError(
        f"no appbuild workspace here: no {CONFIG_NAME} in {here} or any parent "
        "(run appbuild inside the project, or set APPBUILD_WORKSPACE)"
    )


def load_settings(start: Path | None = None) -> Settings:
    """Read ``repo/config.yaml`` of the workspace and apply environment overrides."""
    workspace = find_workspace(start)
    config_path = workspace / CONFIG_NAME
    config: dict = {}
    if config_path.is_file():
        try:
            config = yaml.safe_load(config_path.read_text()) or {}
        except yaml.YAMLError as exc:
            raise AppbuildError(f"{config_path}: not valid YAML: {exc}") from None
    if not isinstance(config, dict):
        raise AppbuildError(f"{config_path}: expected a mapping at top level")

    def place(env: str, default: str) -> Path:
        value = os.environ.get(env) or config.get("paths", {}).get(default.split("/")[-1])
        path = Path(value) if value else workspace / default
        return path if path.is_absolute() else (workspace / path)

    mirrors = config.get("mirrors") or {}
    return Settings(
        workspace=workspace,
        repository=place("APPBUILD_REPOSITORY", "repo/data"),
        cache=place("APPBUILD_CACHE", "repo/cache"),
        logs=place("APPBUILD_LOGS", "repo/logs"),
        images=place("APPBUILD_IMAGES", "images"),
        label=str(config.get("label", DEFAULT_LABEL)),
        mirrors={str(k): [str(u) for u in v] for k, v in mirrors.items()},
        config=config,
    )
