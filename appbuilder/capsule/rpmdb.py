"""The RPM database of a root filesystem made from RPM capsules.

An image staged from RPM capsules stays RPM-managed: :func:`build_rpm_database`
registers each capsule's original header in ``ROOT/var/lib/rpm``, the way conary's
``rpmcapsule.py`` drove librpm (a ``TransactionSet`` rooted at the image, ``addInstall``
of every header, ``run`` with ``--justdb --noscripts --notriggers``), so that
``rpm --root ROOT -qa`` lists the packages and ``rpm --root ROOT -V`` checks the files
appbuild staged. Nothing of the payload is read again: the header (kept at import,
``rpm_header_blob``) carries the file list, digests, modes and owners.

librpm changes root (``chroot``) into the image for the transaction, so the
registration runs in a child process: as root directly, and for an unprivileged user
inside a user namespace where it is root (``unshare --map-root-user``), falling back to
a plain child process where user namespaces are not available (rpm 4.18 then skips the
chroot). Either way the machine's own rpm database is never opened.

Notes:

* The database format is the one of the machine's librpm (sqlite with rpm 4.16+), which
  is what EL9-era rpm reads; an older guest rpm (EL7's Berkeley DB) must rebuild it
  (``rpmdb --rebuilddb``) with its own tools.
* ``dbpath`` is ``/var/lib/rpm`` inside the root, where Scientific Linux / EL rpm
  looks; Debian's rpm keeps its own database elsewhere (``~/.rpmdb``), so on a Debian
  host query the image with ``rpm --root ROOT --dbpath /var/lib/rpm -qa``.
* An existing database at that path is replaced.
* Scriptlets never run here (``--noscripts --notriggers``): for a group with
  ``packageScripts`` appbuild runs them itself in the image's sandbox
  (:mod:`appbuilder.assemble.scripts`), after this registration, so the database lists
  the packages as installed and their scriptlets have run.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Iterable

from appbuilder.capsule.model import CapsuleError
from appbuilder.repository.store import ContentStore
from appbuilder.repository.trove import Trove

DEFAULT_DBPATH = "/var/lib/rpm"
_DB_FILES = ("rpmdb.sqlite", "rpmdb.sqlite-shm", "rpmdb.sqlite-wal", ".rpm.lock", "Packages", "Packages.db",
             "Index.db", ".dbenv.lock")


def rpm_capsules(troves: Iterable[Trove]) -> list[Trove]:
    """The troves of *troves* that are RPM capsule components."""
    return [t for t in troves if t.info.get("capsule") == "rpm" and t.info.get("rpm_header_blob")]


def build_rpm_database(store: ContentStore, troves: Iterable[Trove], root: Path | str, *,
                       dbpath: str = DEFAULT_DBPATH, source_date_epoch: int | None = None) -> int:
    """Write the RPM database of the RPM capsules among *troves* into *root*; returns how many.

    *source_date_epoch*: the install time and transaction id librpm records (it reads
    SOURCE_DATE_EPOCH instead of the clock), so the same closure gives the same database."""
    root = Path(root)
    capsules = rpm_capsules(troves)
    if not capsules:
        return 0
    db_dir = root / dbpath.lstrip("/")
    db_dir.mkdir(parents=True, exist_ok=True)
    for name in _DB_FILES:
        (db_dir / name).unlink(missing_ok=True)
    work = Path(tempfile.mkdtemp(prefix="appbuild-rpmdb-"))
    try:
        headers = []
        for i, t in enumerate(sorted(capsules, key=lambda t: (t.name, str(t.flavor)))):
            path = work / f"{i:05d}.hdr"
            store.copy_to(t.info["rpm_header_blob"], path)
            headers.append(str(path))
        argv = [sys.executable, "-m", "appbuilder.capsule.rpmdb", "--root", str(root.resolve()),
                "--dbpath", dbpath, *headers]
        env = {**os.environ, "PYTHONPATH": _project_path()}
        if source_date_epoch is not None:
            env["SOURCE_DATE_EPOCH"] = str(source_date_epoch)
        if os.geteuid() != 0 and shutil.which("unshare"):
            proc = subprocess.run(["unshare", "--map-root-user", *argv], capture_output=True, text=True, env=env)
            if proc.returncode != 0 and "unshare" in proc.stderr:  # no user namespaces here
                proc = subprocess.run(argv, capture_output=True, text=True, env=env)
        else:
            proc = subprocess.run(argv, capture_output=True, text=True, env=env)
        if proc.returncode != 0:
            raise CapsuleError(f"registering {len(headers)} RPM capsules in {db_dir} failed:\n"
                               f"{(proc.stderr or proc.stdout).strip()[-2000:]}")
        wal = db_dir / "rpmdb.sqlite-wal"
        if wal.exists() and wal.stat().st_size == 0:  # checkpointed: leave just the database
            wal.unlink()
            (db_dir / "rpmdb.sqlite-shm").unlink(missing_ok=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return len(capsules)


def _project_path() -> str:
    here = str(Path(__file__).resolve().parents[2])
    extra = os.environ.get("PYTHONPATH")
    return f"{here}{os.pathsep}{extra}" if extra else here


def _register(root: str, dbpath: str, headers: list[str]) -> list[str]:
    """In the child process: the justdb transaction. Returns rpm's problems, if any."""
    import rpm

    rpm.addMacro("_dbpath", dbpath)
    ts = rpm.TransactionSet(root)
    no_checks = rpm._RPMVSF_NOSIGNATURES | rpm._RPMVSF_NOPAYLOAD  # verified at import
    ts.setVSFlags(no_checks)
    ts.setVfyFlags(no_checks)
    ts.setVfyLevel(0)
    ts.setKeyring(rpm.keyring())
    for path in headers:
        fd = rpm.fd.open(path)
        try:
            ts.addInstall(ts.hdrFromFdno(fd), path, "i")
        finally:
            fd.close()
    ts.setFlags(rpm.RPMTRANS_FLAG_JUSTDB | rpm.RPMTRANS_FLAG_NOSCRIPTS | rpm.RPMTRANS_FLAG_NOTRIGGERS)
    ts.setProbFilter(
        rpm.RPMPROB_FILTER_IGNOREARCH | rpm.RPMPROB_FILTER_IGNOREOS | rpm.RPMPROB_FILTER_REPLACEPKG
        | rpm.RPMPROB_FILTER_REPLACENEWFILES | rpm.RPMPROB_FILTER_REPLACEOLDFILES
        | rpm.RPMPROB_FILTER_OLDPACKAGE | rpm.RPMPROB_FILTER_DISKSPACE | rpm.RPMPROB_FILTER_DISKNODES
    )
    ts.order()
    # opened before the transaction changes root into the image, handed out as copies
    files = {path: os.open(path, os.O_RDONLY) for path in headers}
    handed: dict[str, list[int]] = {}

    def callback(what, amount, total, key, data):
        if what == rpm.RPMCALLBACK_INST_OPEN_FILE:
            fd = os.dup(files[key])
            os.lseek(fd, 0, os.SEEK_SET)
            handed.setdefault(key, []).append(fd)
            return fd
        if what == rpm.RPMCALLBACK_INST_CLOSE_FILE:
            for fd in handed.pop(key, []):
                os.close(fd)
        return None

    problems = ts.run(callback, None) or []
    ts.closeDB()
    for fd in [*files.values(), *(fd for fds in handed.values() for fd in fds)]:
        os.close(fd)
    return [p[0] if isinstance(p, tuple) else str(p) for p in problems]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="register RPM headers in ROOT's rpm database (justdb)")
    p.add_argument("--root", required=True)
    p.add_argument("--dbpath", default=DEFAULT_DBPATH)
    p.add_argument("headers", nargs="+")
    args = p.parse_args(argv)
    problems = _register(args.root, args.dbpath, args.headers)
    for problem in problems:
        print(problem, file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
