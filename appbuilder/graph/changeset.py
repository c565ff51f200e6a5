"""What one recorded group version changes against another: ``appbuild showcs``.

conary's ``showcs`` (and ``rdiff``) printed the change set between two versions of a
trove: troves installed, erased and updated (old -> new version), and with ``--ls`` /
``--diff`` what happened to their files. Here the two are recorded group troves of the
repository (``appbuild resolve`` records them); their members are compared by name:

* ``added``, ``removed``: a member only the new, or only the old version holds;
* ``changed``: a member both hold at different versions (old -> new), and with
  ``files=True`` its paths added (``+``), removed (``-``) and changed (``~``, saying what:
  content, mode, owner, type, link target); with ``diff=True`` a unified diff of each
  changed text file's content (read from the content store, which checks its sha256).

Versions are typed as ``appbuild show`` takes them: a full version, a revision
``1.0-1-2``, ``upstream-sourcecount`` or the upstream version alone (then its newest).
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field

from appbuilder.core.errors import AppbuildError
from appbuilder.repository.repo import Repository
from appbuilder.repository.trove import GROUP, FileEntry, Trove
from appbuilder.repository.versions import NVF, TroveSpec

MAX_DIFF_BYTES = 1 << 20  # larger contents are named as changed, not diffed


@dataclass
class MemberChange:
    name: str
    old: NVF | None  # None when added
    new: NVF | None  # None when removed
    files: list[str] = field(default_factory=list)  # "+ path", "- path", "~ path (what)", diff lines

    @property
    def kind(self) -> str:
        return "added" if self.old is None else "removed" if self.new is None else "changed"


@dataclass
class Changeset:
    old: NVF
    new: NVF
    changes: list[MemberChange]
    unchanged: int

    def lines(self) -> list[str]:
        """conary's shape: one line per member changed, then the counts."""
        out = [f"{self.old.name}={self.old.version.revision} -> {self.new.version.revision} ({self.new.flavor})"]
        width = max([len(c.name) for c in self.changes] + [4])
        for c in self.changes:
            if c.kind == "changed":
                out.append(f"  changed  {c.name:{width}}  {c.old.version.revision} -> {c.new.version.revision}")
            elif c.kind == "added":
                out.append(f"  added    {c.name:{width}}  {c.new.version.revision}")
            else:
                out.append(f"  removed  {c.name:{width}}  {c.old.version.revision}")
            out += [f"      {line}" for line in c.files]
        counts = {k: sum(1 for c in self.changes if c.kind == k) for k in ("changed", "added", "removed")}
        out.append(f"  {counts['changed']} changed, {counts['added']} added, {counts['removed']} removed, "
                   f"{self.unchanged} unchanged")
        return out


def parse_change(text: str, from_version: str | None = None, to_version: str | None = None) -> tuple[str, str | None, str | None]:
    """``group-NAME=V1--V2`` (conary's spelling), or ``group-NAME`` with --from/--to: the
    group name, the old and the new version (None: the one before the new, the newest)."""
    spec_text, sep, second = text.partition("--")
    spec = TroveSpec.parse(spec_text)
    if spec.flavor is not None:
        raise AppbuildError(f"{text}: name the architecture with --arch, not a flavor")
    if sep and not (spec.version and second):
        raise AppbuildError(f"bad change {text!r}: expected group-NAME=V1--V2")
    old, new = (spec.version, second) if sep else (None, spec.version)
    if (from_version or to_version) and (sep or spec.version):
        raise AppbuildError(f"{text} names its versions already: drop --from/--to, or write just {spec.name}")
    return spec.name, from_version or old, to_version or new


def group_version(repo: Repository, name: str, arch: str, version: str | None, *, before: NVF | None = None) -> NVF:
    """A recorded group trove of *arch*: matching *version*, else the newest (the one just
    older than *before* when given), with an error that lists the versions there are."""
    found = [n for n in repo.versions(name, arch=arch) if repo.get(n, with_files=False).kind == GROUP]
    if not found:
        other = repo.versions(name)
        raise AppbuildError(f"no recorded group {name} for {arch}" + (
            f" (it has {', '.join(sorted({str(n.flavor) for n in other}))})" if other else
            f"; run 'appbuild resolve {name} --arch {arch}' first"))
    known = ", ".join(n.version.revision for n in found[-8:])
    if version:
        matching = [n for n in found if n.version.matches(version)]
        if not matching:
            raise AppbuildError(f"{name} has no version {version!r} for {arch}; it has: {known}")
        return matching[-1]
    if before is not None:
        older = [n for n in found if n != before and found.index(n) < found.index(before)] if before in found else []
        if not older:
            raise AppbuildError(f"{before} is the first recorded version of {name} for {arch}: there is nothing "
                                f"to compare it with (versions: {known})")
        return older[-1]
    return found[-1]


def changeset(repo: Repository, old: NVF, new: NVF, *, files: bool = False, diff: bool = False) -> Changeset:
    """What group version *new* changes against *old*."""
    a, b = _members(repo.get(old, with_files=False)), _members(repo.get(new, with_files=False))
    changes = []
    for key in sorted(set(a) | set(b)):
        x, y = a.get(key), b.get(key)
        if x == y:
            continue
        change = MemberChange(key, x, y)
        if files or diff:
            change.files = _file_changes(repo, x, y, diff=diff)
        changes.append(change)
    unchanged = sum(1 for k in set(a) & set(b) if a[k] == b[k])
    return Changeset(old, new, changes, unchanged)


def _members(group: Trove) -> dict[str, NVF]:
    """Members by name (and flavor, when one name is there twice)."""
    names = [m.name for m in group.members]
    return {(m.name if names.count(m.name) == 1 else f"{m.name}[{m.flavor}]"): m for m in group.members}


def _file_changes(repo: Repository, old: NVF | None, new: NVF | None, *, diff: bool) -> list[str]:
    a = {f.path: f for f in repo.get(old).files} if old else {}
    b = {f.path: f for f in repo.get(new).files} if new else {}
    out = []
    for path in sorted(set(a) | set(b)):
        x, y = a.get(path), b.get(path)
        if x is None:
            out.append(f"+ {path}")
        elif y is None:
            out.append(f"- {path}")
        else:
            what = _what_changed(x, y)
            if what:
                out.append(f"~ {path} ({', '.join(what)})")
                if diff and x.sha256 != y.sha256:
                    out += _content_diff(repo, x, y)
    return out


def _what_changed(x: FileEntry, y: FileEntry) -> list[str]:
    what = []
    if x.type != y.type:
        what.append(f"type {x.type} -> {y.type}")
    if x.sha256 != y.sha256:
        what.append(f"content {x.size} -> {y.size} bytes")
    if x.mode != y.mode:
        what.append(f"mode {x.mode:o} -> {y.mode:o}")
    if (x.owner, x.group) != (y.owner, y.group):
        what.append(f"owner {x.owner}:{x.group} -> {y.owner}:{y.group}")
    if x.target != y.target:
        what.append(f"target {x.target} -> {y.target}")
    if x.config != y.config:
        what.append("config" if y.config else "no longer config")
    return what


def _content_diff(repo: Repository, x: FileEntry, y: FileEntry) -> list[str]:
    if not (x.sha256 and y.sha256) or max(x.size, y.size) > MAX_DIFF_BYTES:
        return ["  (not compared: too large or not a regular file)"]
    try:
        old, new = repo.store.read(x.sha256).decode("utf-8"), repo.store.read(y.sha256).decode("utf-8")
    except UnicodeDecodeError:
        return ["  (binary content differs)"]
    if "\0" in old or "\0" in new:
        return ["  (binary content differs)"]
    return ["  " + line.rstrip("\n") for line in difflib.unified_diff(
        old.splitlines(keepends=True), new.splitlines(keepends=True), fromfile=f"a{x.path}", tofile=f"b{y.path}")]
