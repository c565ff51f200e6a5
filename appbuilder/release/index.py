"""The release index of one group on a download server: ``GROUP/releases.json`` + ``GROUP/index.html``.

The feed and the page say, for every release of the group kept on the server, its
channel (``release`` or ``nightly``), when it was created (built), first published and
last updated, and per architecture its formats, files, sizes and sha256, and whether it
is *current* (what the page offers first), *available*, or *withdrawn* (rolled back;
listed but never offered as current again). The release trees themselves are
immutable: everything that changes after publishing (current, withdrawn) changes here
only, which is what makes a rollback instant.

``current`` is kept per architecture: group versions are counted per architecture (an
x86 kernel update does not bump the x86_64 group), so the newest good x86_64 and x86
releases may be different versions.

The feed (``releases.json``, schema 1)::

    {"schema": 1, "group": "group-cernvm", "updated": "2024-05-01T12:00:00Z",
     "current": {"x86_64": "1.0-1-3", "x86": "1.0-1-2"},
     "signing_key": {"fingerprint": "...", "url": "../signing-key.asc"} | null,
     "releases": [{"version": "1.0-1-3", "trove_version": "cernvm@cvm:2/1.0-1-3", "channel": "nightly",
                   "created": ..., "published": ..., "updated": ...,
                   "arches": {"x86_64": {"status": "current", "builder": {...}, "created": ...,
                              "published": ..., "withdrawn": null, "reason": null,
                              "formats": {"qcow2": ["NAME.qcow2"]},
                              "files": {"NAME.qcow2": {"size": 1, "sha256": "...", "path": "1.0-1-3/x86_64/NAME.qcow2"}},
                              "manifest": "1.0-1-3/x86_64/manifest.json",
                              "sha256sums": "1.0-1-3/x86_64/SHA256SUMS",
                              "signature": "1.0-1-3/x86_64/SHA256SUMS.asc" | null}}}]}

Paths are relative to the feed. Releases are listed newest version first.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import jinja2

from appbuilder.core.errors import AppbuildError
from appbuilder.core.ui import human_size
from appbuilder.store.images import revision_key

SCHEMA = 1
FEED = "releases.json"
PAGE = "index.html"
TEMPLATES = Path(__file__).resolve().parent / "templates"
CHANNELS = ("release", "nightly")

CURRENT, AVAILABLE, WITHDRAWN = "current", "available", "withdrawn"


class ReleaseIndexError(AppbuildError):
    """The destination's index is unreadable, or the change asked of it is not allowed."""


@dataclass
class ArchRelease:
    formats: dict[str, list[str]]
    files: dict[str, dict]  # name -> {size, sha256, path}
    manifest: str  # path of the release's manifest.json (pins, checksums, builder)
    sha256sums: str
    signature: str | None
    created: str
    published: str
    builder: dict = field(default_factory=dict)
    signed_by: str | None = None  # OpenPGP fingerprint of the key that signed SHA256SUMS
    withdrawn: str | None = None
    reason: str | None = None

    @property
    def size(self) -> int:
        return sum(f["size"] for f in self.files.values())


@dataclass
class Release:
    version: str  # the revision, 1.0-1-3: the directory name on the server
    trove_version: str  # cernvm@cvm:2/1.0-1-3
    channel: str
    created: str
    published: str
    updated: str
    arches: dict[str, ArchRelease] = field(default_factory=dict)


@dataclass
class ReleaseIndex:
    group: str
    updated: str = ""
    current: dict[str, str] = field(default_factory=dict)
    releases: list[Release] = field(default_factory=list)
    signing_key: dict | None = None

    # ------------------------------------------------------------ reading

    @classmethod
    def empty(cls, group: str) -> "ReleaseIndex":
        return cls(group)

    @classmethod
    def parse(cls, data: bytes, where: str) -> "ReleaseIndex":
        try:
            raw = json.loads(data)
            if raw.get("schema") != SCHEMA:
                raise ReleaseIndexError(f"{where}: unknown release index schema {raw.get('schema')!r}")
            releases = []
            for r in raw["releases"]:
                arches = {a: ArchRelease(**{k: v for k, v in e.items() if k != "status"})  # status is derived
                          for a, e in r["arches"].items()}
                releases.append(Release(**{**r, "arches": arches}))
            return cls(raw["group"], raw.get("updated", ""), dict(raw.get("current") or {}), releases,
                       raw.get("signing_key"))
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise ReleaseIndexError(f"{where}: not a valid release index ({exc}); fix or remove it by hand") from None

    def get(self, version: str) -> Release | None:
        return next((r for r in self.releases if r.version == version), None)

    def status(self, version: str, arch: str) -> str:
        entry = self.get(version).arches[arch]
        if entry.withdrawn:
            return WITHDRAWN
        return CURRENT if self.current.get(arch) == version else AVAILABLE

    def arches(self) -> list[str]:
        return sorted({a for r in self.releases for a in r.arches})

    # ------------------------------------------------------------ changing

    def add(self, release: Release, *, make_current: bool, now: str) -> bool:
        """Add *release* (or new arches of a release already listed); make it current if asked.
        Returns whether the index changed."""
        changed = False
        known = self.get(release.version)
        if known is None:
            self.releases.append(release)
            self.releases.sort(key=lambda r: revision_key(r.version), reverse=True)
            known, changed = release, True
        else:
            for arch, entry in release.arches.items():
                if arch not in known.arches:
                    known.arches[arch] = entry
                    changed = True
        if make_current:
            for arch in release.arches:
                if self.current.get(arch) != release.version:
                    self.current[arch] = release.version
                    changed = True
        if changed:
            known.updated = self.updated = now
        return changed

    def rollback(self, version: str, arches: list[str] | None, *, reason: str, now: str) -> dict[str, str | None]:
        """Make *version* current for *arches* (default: every arch it has); the release that was
        current for an arch is withdrawn. Returns arch -> the version that was current before."""
        release = self.get(version)
        if release is None:
            listed = ", ".join(r.version for r in self.releases) or "none"
            raise ReleaseIndexError(f"{self.group}={version} was never published here; published versions: {listed}")
        arches = arches or sorted(release.arches)
        missing = [a for a in arches if a not in release.arches]
        if missing:
            raise ReleaseIndexError(f"{self.group}={version} has no {', '.join(missing)} release here "
                              f"(it has {', '.join(sorted(release.arches))})")
        for arch in arches:
            entry = release.arches[arch]
            if entry.withdrawn:
                good = [r.version for r in self.releases if arch in r.arches and not r.arches[arch].withdrawn]
                raise ReleaseIndexError(f"{self.group}={version} ({arch}) was withdrawn on {entry.withdrawn}"
                                  f"{': ' + entry.reason if entry.reason else ''}; it cannot be made current again. "
                                  f"Releases that can: {', '.join(good) or 'none'}")
        before: dict[str, str | None] = {}
        for arch in arches:
            previous = self.current.get(arch)
            before[arch] = previous
            if previous == version:
                continue
            if previous and self.get(previous):
                old = self.get(previous).arches[arch]
                old.withdrawn, old.reason = now, reason
                self.get(previous).updated = now
            self.current[arch] = version
            release.updated = now
        self.updated = now
        return before

    def prune(self, keep: int, *, now: str) -> list[Release]:
        """Drop all but the newest *keep* nightlies (never a current release, never a ``release``
        channel one); returns the dropped releases (their files are deleted after the index)."""
        if keep < 0:
            raise ReleaseIndexError("--keep must be 0 or more")
        current = set(self.current.values())
        nightlies = [r for r in self.releases if r.channel == "nightly"]  # newest first
        dropped = [r for r in nightlies[keep:] if r.version not in current]
        self.releases = [r for r in self.releases if r not in dropped]
        if dropped:
            self.updated = now
        return dropped

    # ------------------------------------------------------------ writing

    def to_dict(self) -> dict:
        releases = []
        for r in self.releases:
            d = asdict(r)
            for arch in d["arches"]:
                d["arches"][arch] = {"status": self.status(r.version, arch), **d["arches"][arch]}
            releases.append(d)
        return {"schema": SCHEMA, "group": self.group, "updated": self.updated, "current": dict(sorted(self.current.items())),
                "signing_key": self.signing_key, "releases": releases}

    def feed(self) -> bytes:
        return (json.dumps(self.to_dict(), indent=2) + "\n").encode()

    def page(self) -> bytes:
        return render("release-index.html.j2", index=self, data=self.to_dict()).encode()


_ENVS: dict[tuple[Path, ...], jinja2.Environment] = {}


def render(template: str, *, search: tuple[Path, ...] = (), **context) -> str:
    """Render a page template: one in *search* (directories looked in first, e.g. the
    nightly report's) or in ``appbuilder/release/templates/`` (pages and their macros)."""
    dirs = (*search, TEMPLATES)
    env = _ENVS.get(dirs)
    if env is None:
        env = _ENVS[dirs] = jinja2.Environment(
            loader=jinja2.FileSystemLoader([str(d) for d in dirs]), autoescape=True,
            undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True)
        env.filters["size"] = human_size
    return env.get_template(template).render(**context)


def groups_page(groups: list[ReleaseIndex], updated: str) -> bytes:
    """The destination's front page: every group and its current release per arch."""
    return render("groups.html.j2", groups=groups, updated=updated).encode()
