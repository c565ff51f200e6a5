"""Shared fixtures: temporary repositories and workspaces, real cooks shared per session.

Slow, real work (cooking libhello/hello for both architectures, fetching Debian
sources) happens once per session in fixtures that tests only read from. Tests that
change things get their own repository or workspace in ``tmp_path``.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest

from appbuilder.assemble.meta import ImageMeta
from appbuilder.core.arch import get_arch
from appbuilder.core.settings import Settings, load_settings
from tests.disks import image_meta, make_disk

PROJECT = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent


def make_settings(root: Path, *, workspace: Path = PROJECT, cache: Path | None = None) -> Settings:
    """Settings of *workspace* with all runtime data under *root* (cache may be shared)."""
    base = load_settings(workspace)
    return dataclasses.replace(
        base,
        workspace=workspace,
        repository=root / "repo",
        cache=cache or root / "cache",
        logs=root / "logs",
        images=root / "images",
    )


def env_for(settings: Settings) -> dict[str, str]:
    """Environment that points the ``appbuild`` command at *settings*."""
    env = dict(os.environ)
    env.update(
        APPBUILD_WORKSPACE=str(settings.workspace),
        APPBUILD_REPOSITORY=str(settings.repository),
        APPBUILD_CACHE=str(settings.cache),
        APPBUILD_LOGS=str(settings.logs),
        APPBUILD_IMAGES=str(settings.images),
    )
    return env


def run_appbuild(settings: Settings, *args: str, check: bool = True, timeout: float = 1800, **kw):
    """Run the real ``appbuild`` command line; returns the CompletedProcess."""
    proc = subprocess.run(
        [str(VENV_BIN / "appbuild"), *args],
        env=env_for(settings),
        cwd=kw.pop("cwd", settings.workspace),
        capture_output=True,
        text=True,
        timeout=timeout,
        **kw,
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"appbuild {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


@pytest.fixture(scope="session")
def shared_cache(tmp_path_factory) -> Path:
    """One lookaside cache for the session: every source is fetched once."""
    return tmp_path_factory.mktemp("cache")


@pytest.fixture
def settings(tmp_path, shared_cache) -> Settings:
    return make_settings(tmp_path, cache=shared_cache)


def sigint_as_from_a_terminal() -> None:
    """``preexec_fn`` of a child a test interrupts with SIGINT: as from a terminal. A suite
    run in the background (a non-interactive shell's ``&``) hands its children SIGINT
    ignored, and a program keeps an ignored SIGINT ignored."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def free_port() -> int:
    """A loopback port nothing listens on (yet)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def component(repo, name: str, arch: str | None = None):
    """The newest trove matching *name* (for *arch*), with its files."""
    return repo.get(repo.find_one(name, arch=arch))


def new_workspace(root: Path, recipes: list[str] = (), *, label: str = "cernvm@cvm:2") -> Path:
    """A scratch workspace under *root* holding copies of some of the project's recipes (and
    the toolchain group every cook's build root is made from)."""
    ws = root / "workspace"
    (ws / "repo").mkdir(parents=True)
    (ws / "recipes").mkdir()
    (ws / "groups").mkdir()
    (ws / "repo" / "config.yaml").write_text(f"label: {label}\nsource_date_epoch: 1700000000\n")
    shutil.copy(PROJECT / "groups" / f"{TOOLCHAIN}.py", ws / "groups")
    for name in recipes:
        shutil.copytree(PROJECT / "recipes" / name, ws / "recipes" / name)
    return ws


@pytest.fixture
def workspace(tmp_path, shared_cache):
    """A scratch workspace (empty recipes/) and its settings."""
    ws = new_workspace(tmp_path)
    return make_settings(tmp_path, workspace=ws, cache=shared_cache)


TOOLCHAIN = "group-toolchain"


@pytest.fixture(scope="session")
def toolchain_repo(tmp_path_factory, shared_cache) -> Path:
    """A repository holding the toolchain group (its Debian packages imported through the real
    command line, then resolved), made once per session: cooking tests start from a copy."""
    from appbuilder.capsule.importer import group_packages

    root = tmp_path_factory.mktemp("toolchain")
    s = make_settings(root, cache=shared_cache)
    run_appbuild(s, "import", "deb", *group_packages(s, TOOLCHAIN), timeout=3600)
    run_appbuild(s, "resolve", TOOLCHAIN, "--arch", "x86_64")
    with sqlite3.connect(s.repository / "index.sqlite") as db:  # one file to copy
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return s.repository


def copy_repository(source: Path, dest: Path) -> Path:
    """A writable copy of the repository *source*: objects hard-linked (they never change once
    written), the index copied through SQLite (what a write-ahead log beside it holds too)."""
    dest.mkdir(parents=True)
    subprocess.run(["cp", "-a", "--link", str(source / "objects"), str(dest / "objects")], check=True)
    a, b = sqlite3.connect(source / "index.sqlite"), sqlite3.connect(dest / "index.sqlite")
    try:
        a.backup(b)
    finally:
        a.close()
        b.close()
    return dest


def seed_repository(settings: Settings, template: Path) -> Settings:
    """Start *settings*' repository as a copy of *template* (:func:`copy_repository`)."""
    copy_repository(template, settings.repository)
    return settings


@pytest.fixture
def cook_workspace(workspace, toolchain_repo):
    """A scratch workspace whose repository already holds the toolchain: ready to cook."""
    return seed_repository(workspace, toolchain_repo)


@pytest.fixture(scope="session")
def hello_repo(tmp_path_factory, shared_cache, toolchain_repo):
    """libhello and hello cooked for x86_64 and x86 through the real CLI, once per session."""
    root = tmp_path_factory.mktemp("hello-repo")
    ws = new_workspace(root, ["libhello", "hello"])
    s = seed_repository(make_settings(root, workspace=ws, cache=shared_cache), toolchain_repo)
    run_appbuild(s, "cook", "recipes/libhello", "recipes/hello", "--arch", "all", "-j", "2")
    return s


@pytest.fixture(scope="session")
def unprivileged_user() -> str | None:
    """A user without privileges to run things as (created when the tests run as root);
    None when the tests already run unprivileged."""
    if os.geteuid() != 0:
        return None
    name = "appbuild-test"
    if subprocess.run(["id", name], capture_output=True).returncode != 0:
        subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", name],
                       check=True, capture_output=True)
    return name


@dataclasses.dataclass
class AsUser:
    """Runs appbuild as an unprivileged user (``appbuild-test``, or the tests' own user when
    they already run unprivileged), from a copy of appbuild and its Python dependencies in a
    directory that user can read: the clone itself may sit where others cannot enter."""

    user: str | None  # None: the tests already run unprivileged
    runtime: Path  # appbuilder + its dependencies, readable by everyone

    def home(self, prefix: str = "appbuild-user-") -> Path:
        """A fresh directory the user owns, outside pytest's private (0700) temporary tree."""
        d = Path(tempfile.mkdtemp(prefix=prefix))
        d.chmod(0o755)
        if self.user:
            shutil.chown(d, self.user, self.user)
        return d

    def give(self, path: Path) -> None:
        """Hand *path* (a tree made by the tests) over to the user."""
        if self.user:
            subprocess.run(["chown", "-R", f"{self.user}:{self.user}", str(path)], check=True)

    def appbuild(self, settings: Settings, *args: str, check: bool = True, timeout: float = 1800,
                 **kw) -> subprocess.CompletedProcess:
        env = {k: v for k, v in env_for(settings).items() if k.startswith("APPBUILD_")}
        env.update(PATH="/usr/sbin:/usr/bin:/sbin:/bin", HOME=str(settings.workspace), LANG="C.UTF-8")
        boot = f"import sys; sys.path[:0] = [{str(self.runtime)!r}]; from appbuilder.cli import main; sys.exit(main())"
        argv = ["/usr/bin/python3", "-c", boot, *args]
        if self.user:
            argv = ["runuser", "-u", self.user, "--", "env", "-i", *[f"{k}={v}" for k, v in env.items()], *argv]
        proc = subprocess.run(argv, env=env, cwd=kw.pop("cwd", settings.workspace), capture_output=True, text=True,
                              timeout=timeout, **kw)
        if check and proc.returncode != 0:
            raise AssertionError(f"appbuild {' '.join(args)} as {self.user} failed ({proc.returncode}):\n"
                                 f"{proc.stdout}\n{proc.stderr}")
        return proc


def _python_runtime(dest: Path) -> None:
    """Copy appbuild (a checkout of the clone's commit, with the working tree's ``appbuilder/``
    over it, formats data included, so the builder identity is the same) and the distributions it
    needs (recursively) into *dest*."""
    import importlib.metadata as md
    import re

    if (PROJECT / ".git").exists():
        subprocess.run(["git", "clone", "-q", "--local", "--no-checkout", str(PROJECT), str(dest)], check=True)
    for d in ("appbuilder",):
        shutil.copytree(PROJECT / d, dest / d, ignore=shutil.ignore_patterns("__pycache__"), dirs_exist_ok=True)
    seen: set[str] = set()
    todo = ["appbuilder"]
    while todo:
        name = todo.pop()
        key = re.sub(r"[-_.]+", "-", name).lower()
        if key in seen:
            continue
        seen.add(key)
        try:
            dist = md.distribution(name)
        except md.PackageNotFoundError:
            continue
        for req in dist.requires or []:
            if "extra ==" not in req:
                todo.append(re.split(r"[\s;<>=!~\[(]", req, maxsplit=1)[0])
        if key == "appbuilder":
            continue
        base = Path(dist.locate_file(""))
        if not str(base).startswith(str(VENV_BIN.parent)):
            continue  # a Debian package in the system's site-packages: readable already
        for f in dist.files or []:
            if f.parts[0] == ".." or f.suffix == ".pyc":
                continue
            target = dest / f
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(base / f, target)


@pytest.fixture(scope="session")
def as_user(unprivileged_user, tmp_path_factory) -> AsUser:
    runtime = Path(tempfile.mkdtemp(prefix="appbuild-runtime-"))
    runtime.chmod(0o755)
    _python_runtime(runtime)
    subprocess.run(["chmod", "-R", "a+rX", str(runtime)], check=True)
    if unprivileged_user:  # git reads a checkout only for its owner
        subprocess.run(["chown", "-R", unprivileged_user, str(runtime)], check=True)
    yield AsUser(unprivileged_user, runtime)
    shutil.rmtree(runtime, ignore_errors=True)


@dataclasses.dataclass
class Appliance:
    """group-cernvm built once for the session, in every format, for both architectures."""

    settings: Settings
    version: dict[str, str]  # arch -> group revision (1.0-1-1)
    files: dict[tuple[str, str], list[Path]]  # (arch, format) -> files
    build_output: str

    def file(self, arch: str, fmt: str, suffix: str | None = None) -> Path:
        paths = self.files[(arch, fmt)]
        return next(p for p in paths if suffix is None or p.name.endswith(suffix)) if suffix else paths[0]


APPLIANCE_FORMATS = "raw,qcow2,vmdk,vmdk-esx,ova,vhd,vhd-dynamic,ami"


@pytest.fixture(scope="session")
def appliance(tmp_path_factory, shared_cache, toolchain_repo) -> Appliance:
    """Build group-cernvm for x86_64 and x86 through the real command line (the README's build,
    with every format): it imports the upstream kernels and libraries and cooks the recipes."""
    import re

    root = tmp_path_factory.mktemp("appliance")
    s = seed_repository(make_settings(root, cache=shared_cache), toolchain_repo)
    # the mission's command alone: it imports what repo/config.yaml lists and is missing
    proc = run_appbuild(s, "group-cernvm", "--format", APPLIANCE_FORMATS, "--arch", "all", "-j", "2")
    versions: dict[str, str] = {}
    files: dict[tuple[str, str], list[Path]] = {}
    arch = None
    directory = None
    for line in proc.stdout.splitlines():
        m = re.match(r"^group-cernvm=\S+/(\S+)\[is: (\S+)\]: (\S+)$", line)
        if m:
            versions[m.group(2)] = m.group(1)
            arch, directory = m.group(2), Path(m.group(3))
            continue
        m = re.match(r"^  (\S+)\s+(\S+)  \(", line)
        if m and arch:
            files.setdefault((arch, m.group(1)), []).append(directory / m.group(2))
    assert set(versions) == {"x86_64", "x86"}, proc.stdout
    return Appliance(s, versions, files, proc.stdout)


@pytest.fixture(scope="session")
def x86_64():
    return get_arch("x86_64")


@pytest.fixture(scope="session")
def x86():
    return get_arch("x86")


# ------------------------------------------------------------------ image versions, publishing


def copy_tree(source: Path, target: Path, *, link: bool = False) -> None:
    """A copy of *source* (hard links with *link*: for image files nobody writes to)."""
    subprocess.run(["cp", "-a", "--link" if link else "--reflink=auto", str(source), str(target)], check=True)


def appliance_sandbox(appliance: Appliance, root: Path, recipes: list[str] = ()) -> Settings:
    """A workspace with copies of the project's groups/, repo/config.yaml and the named recipes
    (the others are taken from the repository as the appliance cooked them), a copy of the
    appliance's repository and an image store seeded with the appliance's x86_64 images
    (hard links): new group versions made here never reach the shared appliance."""
    ws = root / "workspace"
    (ws / "repo").mkdir(parents=True)
    (ws / "recipes").mkdir()
    shutil.copy(PROJECT / "repo" / "config.yaml", ws / "repo" / "config.yaml")
    for name in recipes:
        shutil.copytree(PROJECT / "recipes" / name, ws / "recipes" / name)
    shutil.copytree(PROJECT / "groups", ws / "groups")
    s = make_settings(root, workspace=ws, cache=appliance.settings.cache)
    copy_tree(appliance.settings.repository, s.repository)
    version = appliance.version["x86_64"]
    seeded = s.images / "group-cernvm" / version
    seeded.mkdir(parents=True)
    copy_tree(appliance.settings.images / "group-cernvm" / version / "x86_64", seeded / "x86_64", link=True)
    return s


@dataclasses.dataclass
class TwoVersions:
    """group-cernvm (x86_64) recorded in two versions: the appliance's, and one built after a
    change to base-files was cooked (in a sandbox; see appliance_sandbox)."""

    settings: Settings
    old: str
    new: str
    new_output: str


@pytest.fixture(scope="session")
def two_versions(appliance, tmp_path_factory) -> TwoVersions:
    root = tmp_path_factory.mktemp("two-versions")
    s = appliance_sandbox(appliance, root, ["base-files"])
    issue = s.recipes_dir / "base-files" / "recipe.py"
    text = issue.read_text()
    assert "CernVM appliance (built by appbuild)" in text
    issue.write_text(text.replace("CernVM appliance (built by appbuild)", "CernVM appliance (nightly 2)"))
    proc = run_appbuild(s, "group-cernvm", "--arch", "x86_64", "--format", "qcow2,vmdk", "-j", "2")
    import re

    new = re.search(r"^group-cernvm=\S+/(\S+)\[is: x86_64\]: ", proc.stdout, re.M).group(1)
    assert new != appliance.version["x86_64"], proc.stdout
    return TwoVersions(s, appliance.version["x86_64"], new, proc.stdout)


@dataclasses.dataclass
class SigningKey:
    home: Path  # GNUPGHOME with the secret key (what publishing uses)
    key: str  # its user id
    fingerprint: str
    verify_home: Path  # a keyring holding only the public key (what a downloader uses)

    def env(self) -> dict[str, str]:
        return {"APPBUILD_SIGNING_KEY": self.key, "APPBUILD_GPG_HOME": str(self.home)}


@pytest.fixture(scope="session")
def signing_key(tmp_path_factory) -> SigningKey:
    """A fresh OpenPGP signing key for the session, and a separate keyring that trusts it."""
    root = tmp_path_factory.mktemp("gpg")
    home, verify = root / "signer", root / "verifier"
    for d in (home, verify):
        d.mkdir(mode=0o700)
    key = "appbuild test releases <releases@example.invalid>"
    gpg = ["gpg", "--batch", "--no-tty", "--quiet"]
    subprocess.run([*gpg, "--homedir", str(home), "--passphrase", "", "--quick-gen-key", key, "ed25519", "sign",
                    "never"], check=True, capture_output=True)
    public = subprocess.run([*gpg, "--homedir", str(home), "--armor", "--export", key], check=True,
                            capture_output=True).stdout
    subprocess.run([*gpg, "--homedir", str(verify), "--import"], input=public, check=True, capture_output=True)
    listing = subprocess.run([*gpg, "--homedir", str(home), "--with-colons", "--list-keys", key], check=True,
                             capture_output=True, text=True).stdout
    fingerprint = next(line.split(":")[9] for line in listing.splitlines() if line.startswith("fpr:"))
    yield SigningKey(home, "releases@example.invalid", fingerprint, verify)
    for d in (home, verify):
        subprocess.run(["gpgconf", "--homedir", str(d), "--kill", "all"], capture_output=True)


# ------------------------------------------------------------------ a small test disk, its conversions; S3/EC2


os.environ.setdefault("LIBGUESTFS_BACKEND", "direct")
os.environ.setdefault("LIBGUESTFS_BACKEND_SETTINGS", "force_tcg")


@pytest.fixture(scope="session")
def test_disk(tmp_path_factory) -> Path:
    """A 64 MiB MBR disk: FAT /boot (bootable) and an ext4 root with a trove manifest."""
    work = tmp_path_factory.mktemp("disk")
    return make_disk(work / "test.raw", work / "scratch")


@pytest.fixture(scope="session")
def meta(test_disk) -> ImageMeta:
    return image_meta(test_disk)


@pytest.fixture(scope="session")
def converted(test_disk, meta, tmp_path_factory) -> dict[str, list[Path]]:
    """Every format of the test disk, converted once for the session (x86_64)."""
    from appbuilder.formats.convert import convert_all

    out = tmp_path_factory.mktemp("converted")
    return convert_all(test_disk, "all", out, meta, jobs=2)


@pytest.fixture(scope="session")
def moto_endpoint(tmp_path_factory):
    """A moto server (EC2, S3, EBS) on a free loopback port, for the session."""
    pytest.importorskip("moto", reason="moto[server] is in the test extras")
    port = free_port()
    log = tmp_path_factory.mktemp("moto") / "moto.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                                stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            urllib.request.urlopen(f"{url}/moto-api/", timeout=1).read(16)
            break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                pytest.fail(f"moto server did not start:\n{log.read_text()}")
            time.sleep(0.2)
    yield url
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


# ------------------------------------------------------------------ an EL-like rpm-md repository (tests/el_repo.py)

from tests.el_repo import el_http, el_repo  # noqa: E402,F401  (session fixtures)
