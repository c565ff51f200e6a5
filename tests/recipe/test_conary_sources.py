"""Conary's source actions as conary recipes use them, cooked for real from a web server
on 127.0.0.1 (never the internet): a URL ending in '/' completed with NAME-VERSION and
the archive suffixes in conary's order, through a configured mirror:// name; a tarball
taken out of a source RPM made by rpmbuild; keyid= checked with gpgv against a key kept
in the workspace (generated here with gpg); the main directory guessed from the first
archive and %(maindir)s; patch levels tried 1, 0, 2, 3; dir= relative as in conary. A bad,
a missing and a stranger's signature, and a patch that fits no level, fail the cook
naming recipe.py:LINE."""

from __future__ import annotations

import gzip
import hashlib
import io
import subprocess
import tarfile
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest

from appbuilder.cli.common import open_repo
from appbuilder.core.errors import RecipeError, SourceError
from appbuilder.core.settings import BUILTIN_MIRRORS, load_settings
from appbuilder.recipe.source_actions import addArchive, addPatch, addSource
from appbuilder.repository.checkout import materialize
from appbuilder.upstream.lookaside import GUESS_SUFFIXES, Lookaside
from tests.conftest import component, run_appbuild
from tests.servers import StaticServer

GPG = ["gpg", "--batch", "--no-tty", "--quiet"]

GREET_C = b"""#include <stdio.h>
int main(void) { printf("%s\\n", "hello from greet"); return 0; }
"""
GREETING_PATCH = b"""--- greet.c
+++ greet.c
@@ -1,2 +1,2 @@
 #include <stdio.h>
-int main(void) { printf("%s\\n", "hello from greet"); return 0; }
+int main(void) { printf("%s\\n", GREETING); return 0; }
"""  # a -p0 patch: conary's first level, 1, does not fit; 0 does
EXTRA_PATCH = b"""--- a/extra.txt
+++ b/extra.txt
@@ -1 +1 @@
-extra from the source rpm
+extra from the source rpm, patched for %(name)s
"""  # a -p1 patch, gzipped, with macros=True, applied in dir='extras-1.0' (relative to the main directory)
FOREIGN_PATCH = b"""--- a/deep/er/nothing-here.c
+++ b/deep/er/nothing-here.c
@@ -1 +1 @@
-a
+b
"""


def tarball(top: str, files: dict[str, bytes], mode: str = "w:gz") -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode=mode) as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(f"{top}/{name}")
            info.size, info.mode, info.mtime = len(data), 0o644, 1_700_000_000
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass
class Key:
    home: Path
    fingerprint: str
    public: bytes

    @property
    def keyid(self) -> str:  # what conary recipes give: the short key id
        return self.fingerprint[-8:]

    def sign(self, path: Path, out: Path) -> None:
        subprocess.run([*GPG, "--homedir", str(self.home), "--local-user", self.fingerprint, "--detach-sign",
                        "--output", str(out), str(path)], check=True, capture_output=True)


def make_key(home: Path, uid: str) -> Key:
    home.mkdir(mode=0o700)
    subprocess.run([*GPG, "--homedir", str(home), "--passphrase", "", "--quick-gen-key", uid, "ed25519", "sign",
                    "never"], check=True, capture_output=True)
    listing = subprocess.run([*GPG, "--homedir", str(home), "--with-colons", "--list-keys", uid], check=True,
                             capture_output=True, text=True).stdout
    fingerprint = next(line.split(":")[9] for line in listing.splitlines() if line.startswith("fpr:"))
    public = subprocess.run([*GPG, "--homedir", str(home), "--armor", "--export", fingerprint], check=True,
                            capture_output=True).stdout
    return Key(home, fingerprint, public)


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    root = tmp_path_factory.mktemp("gnupg")
    upstream = make_key(root / "upstream", "Greet Upstream <upstream@example.invalid>")
    stranger = make_key(root / "stranger", "Someone Else <else@example.invalid>")
    yield upstream, stranger
    for home in (upstream.home, stranger.home):
        subprocess.run(["gpgconf", "--homedir", str(home), "--kill", "all"], capture_output=True)


def source_rpm(tmp: Path, sources: dict[str, bytes]) -> Path:
    """A source RPM holding *sources*, made by the real rpmbuild -bs."""
    top = tmp / "rpmbuild"
    (top / "SOURCES").mkdir(parents=True)
    for name, data in sources.items():
        (top / "SOURCES" / name).write_bytes(data)
    lines = [f"Source{i}: {name}" for i, name in enumerate(sources)]
    spec = top / "greet-extras.spec"
    spec.write_text(textwrap.dedent("""\
        Name: greet-extras
        Version: 1.0
        Release: 1
        Summary: extras of greet, shipped as a source RPM
        License: MIT
        BuildArch: noarch
        {sources}

        %description
        Extras for the conary source actions test.

        %prep
        %build
        %install
        %files
        """).format(sources="\n".join(lines)))
    subprocess.run(["rpmbuild", "-bs", "--define", f"_topdir {top}", str(spec)], check=True, capture_output=True)
    return next((top / "SRPMS").glob("greet-extras-1.0-1.src.rpm"))


@pytest.fixture
def web(tmp_path):
    root = tmp_path / "www"
    root.mkdir()
    server = StaticServer(root)
    yield server
    server.stop()


def publish(web: StaticServer, rel: str, data: bytes) -> str:
    path = web.directory / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return sha(data)


def workspace_for(settings, web: StaticServer, key: Key | None) -> Path:
    ws = settings.workspace
    config = ws / "repo" / "config.yaml"
    config.write_text(config.read_text() + textwrap.dedent(f"""\
        mirrors:
          upstream: [{web.url}/gone/, {web.url}/mirror/pub/]
        """))
    if key is not None:
        (ws / "keys" / "upstream").mkdir(parents=True)
        (ws / "keys" / "upstream" / "greet-upstream.asc").write_bytes(key.public)
    return ws


def write_recipe(ws: Path, name: str, version: str, setup: str, files: dict[str, bytes] = {}) -> Path:
    d = ws / "recipes" / name
    d.mkdir(parents=True)
    body = textwrap.indent(textwrap.dedent(setup).strip(), " " * 8)
    cls = name.capitalize().replace("-", "")
    (d / "recipe.py").write_text(f"class {cls}(PackageRecipe):\n    name = '{name}'\n    version = '{version}'\n\n"
                                 f"    def setup(r):\n{body}\n")
    for fname, content in files.items():
        (d / fname).write_bytes(content)
    return d


def line_of(recipe_dir: Path, needle: str) -> int:
    lines = (recipe_dir / "recipe.py").read_text().splitlines()
    return next(i for i, line in enumerate(lines, 1) if needle in line)


def cook_fails(settings, name: str) -> str:
    proc = run_appbuild(settings, "cook", f"recipes/{name}", "--arch", "x86_64", check=False)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    return proc.stderr


# ------------------------------------------------------------------ the whole recipe, cooked for both arches


def test_a_conary_style_recipe_cooks_for_both_arches(cook_workspace, web, keys, tmp_path):
    upstream, _ = keys
    ws = workspace_for(cook_workspace, web, upstream)
    # upstream publishes greet-2.1.tar.gz (its top directory is not NAME-VERSION) with a signature;
    # the mirror also has a greet-2.1.tar.bz2 that is something else: the pin skips it
    greet = tarball("greet-src-2.1", {"greet.c": GREET_C, "README": b"greet\n"})
    greet_sha = publish(web, "mirror/pub/greet/greet-2.1.tar.gz", greet)
    upstream.sign(web.directory / "mirror/pub/greet/greet-2.1.tar.gz", web.directory / "mirror/pub/greet/greet-2.1.tar.gz.sig")
    publish(web, "mirror/pub/greet/greet-2.1.tar.bz2", b"an older upload, not the pinned one")
    extras = tarball("extras-1.0", {"extra.txt": b"extra from the source rpm\n"})
    srpm = source_rpm(tmp_path, {"extras-1.0.tar.gz": extras, "unused.txt": b"not taken\n"}).read_bytes()
    srpm_sha = publish(web, "srpms/greet-extras-1.0-1.src.rpm", srpm)

    d = write_recipe(ws, "greet", "2.1", f"""
        r.addArchive('mirror://upstream/greet/', sha256='{greet_sha}', keyid='{upstream.keyid}')
        r.addArchive('extras-1.0.tar.gz', rpm='{web.url}/srpms/greet-extras-1.0-1.src.rpm',
                     sha256='{srpm_sha}', dir='%(maindir)s')
        r.addPatch('greeting.patch')
        r.addPatch('extra.patch.gz', dir='extras-1.0', macros=True)
        r.addSource('greeting.h', dir='include')
        r.addSource('greet.conf', dir='/etc/greet')
        r.Run('%(cc)s %(cflags)s %(ldflags)s -include include/greeting.h -o greet greet.c')
        r.Install('greet', '%(bindir)s/greet')
        r.Install('extras-1.0/extra.txt', '%(datadir)s/greet/extra.txt')
        r.Create('%(datadir)s/greet/maindir', contents='%(maindir)s')
        """, files={"greeting.patch": GREETING_PATCH, "extra.patch.gz": gzip.compress(EXTRA_PATCH),
                    "greeting.h": b'#define GREETING "hello, conary recipes"\n',
                    "greet.conf": b"loud = no\n"})

    run_appbuild(cook_workspace, "cook", "recipes/greet", "--arch", "all", "-j", "2")

    # the directory URL was completed in conary's order, for each mirror base in turn (the two
    # arches cook side by side, each asking in that order: the first asks are in it)
    gone = [f"/gone/greet/greet-2.1.{s}" for s in GUESS_SUFFIXES]
    asked = list(dict.fromkeys(web.requests))
    assert asked[:len(gone) + 2] == [*gone, "/mirror/pub/greet/greet-2.1.tar.bz2",
                                     "/mirror/pub/greet/greet-2.1.tar.gz"]
    assert "/mirror/pub/greet/greet-2.1.tar.gz.sig" in asked and "/srpms/greet-extras-1.0-1.src.rpm" in asked

    repo = open_repo(cook_workspace)
    for arch, bits in (("x86_64", "64-bit"), ("x86", "32-bit")):
        pkg = repo.get(repo.find_one("greet", arch=arch))
        files = {f.path: f for m in pkg.members for f in repo.get(m).files}
        assert {"/usr/bin/greet", "/etc/greet/greet.conf", "/usr/share/greet/extra.txt",
                "/usr/share/greet/maindir"} <= set(files)
        root = tmp_path / f"root-{arch}"
        materialize(repo.store, [repo.get(m) for m in pkg.members], root)
        assert (root / "usr/share/greet/maindir").read_text() == "greet-src-2.1"  # guessed, and %(maindir)s
        assert (root / "usr/share/greet/extra.txt").read_text() == "extra from the source rpm, patched for greet\n"
        assert (root / "etc/greet/greet.conf").read_text() == "loud = no\n"
        out = subprocess.run([str(root / "usr/bin/greet")], capture_output=True, text=True, check=True).stdout
        assert out == "hello, conary recipes\n"  # the -p0 patch applied, the header added in dir='include'
        kind = subprocess.run(["file", "-b", str(root / "usr/bin/greet")], capture_output=True, text=True).stdout
        assert bits in kind
        sources = pkg.info["sources"]
        assert sources[0] == {"action": "addArchive", "url": "mirror://upstream/greet/", "sha256": greet_sha,
                              "keyid": upstream.keyid}
        assert sources[1]["member"] == "extras-1.0.tar.gz" and sources[1]["sha256"] == srpm_sha
        log = repo.store.read(repo.build_log(pkg.nvf)).decode()
        assert "greeting.patch applied at level 0" in log and "extra.patch applied at level 1" in log
        assert "main directory: greet-src-2.1" in log


# ------------------------------------------------------------------ signatures refused


@pytest.fixture
def signed_upstream(cook_workspace, web, keys):
    upstream, stranger = keys
    ws = workspace_for(cook_workspace, web, upstream)
    return ws, upstream, stranger


def test_bad_missing_and_strangers_signatures_fail_the_cook(cook_workspace, web, signed_upstream):
    ws, upstream, stranger = signed_upstream
    good = tarball("badsig-1.0", {"x": b"the real one\n"})
    evil = tarball("badsig-1.0", {"x": b"swapped after signing\n"})
    (web.directory / "signed").mkdir()
    (web.directory / "signed" / "real.tar.gz").write_bytes(good)
    # a signature of other bytes: BAD
    evil_sha = publish(web, "bad/badsig-1.0.tar.gz", evil)
    upstream.sign(web.directory / "signed/real.tar.gz", web.directory / "bad/badsig-1.0.tar.gz.asc")
    d = write_recipe(ws, "badsig", "1.0", f"""
        r.addArchive('{web.url}/bad/', sha256='{evil_sha}', keyid='{upstream.keyid}')
        r.Create('/usr/share/badsig/x', contents='x')
        """)
    err = cook_fails(cook_workspace, "badsig")
    assert f"recipe.py:{line_of(d, 'addArchive')}" in err, err
    assert f"the signature of badsig-1.0.tar.gz by key {upstream.keyid} does not hold" in err and "BAD signature" in err, err

    # no signature at all: conary warned, appbuild refuses
    plain_sha = publish(web, "plain/nosig-1.0.tar.gz", tarball("nosig-1.0", {"x": b"x\n"}))
    d = write_recipe(ws, "nosig", "1.0", f"""
        r.addArchive('{web.url}/plain/nosig-1.0.tar.gz', sha256='{plain_sha}', keyid='{upstream.keyid}')
        """)
    err = cook_fails(cook_workspace, "nosig")
    assert f"recipe.py:{line_of(d, 'addArchive')}" in err, err
    assert f"nosig-1.0.tar.gz must be signed by key {upstream.keyid}, but it has no detached signature" in err, err

    # a good signature by a key the workspace does not hold
    other_sha = publish(web, "other/other-1.0.tar.gz", tarball("other-1.0", {"x": b"x\n"}))
    stranger.sign(web.directory / "other/other-1.0.tar.gz", web.directory / "other/other-1.0.tar.gz.sig")
    d = write_recipe(ws, "other", "1.0", f"""
        r.addArchive('{web.url}/other/other-1.0.tar.gz', sha256='{other_sha}', keyid='{stranger.keyid}')
        """)
    err = cook_fails(cook_workspace, "other")
    assert f"recipe.py:{line_of(d, 'addArchive')}" in err, err
    assert "which is not among the keys given" in err and stranger.keyid in err, err


def test_a_patch_that_fits_no_level_fails_naming_the_line(cook_workspace, web, keys):
    ws = workspace_for(cook_workspace, web, None)
    d = write_recipe(ws, "nofit", "1.0", """
        r.addSource('a.c')
        r.addPatch('foreign.patch')
        """, files={"a.c": b"a\n", "foreign.patch": FOREIGN_PATCH})
    err = cook_fails(cook_workspace, "nofit")
    assert f"recipe.py:{line_of(d, 'foreign.patch')}" in err, err
    assert "could not apply patch foreign.patch at level 1, 0, 2, 3" in err, err


# ------------------------------------------------------------------ the parts, without a cook


def test_directory_urls_are_completed_per_base_and_the_pin_picks_the_file(web, tmp_path):
    cache = Lookaside(tmp_path / "lookaside", {"up": [f"{web.url}/a/", f"{web.url}/b/"]})
    data = b"the tgz one"
    digest = publish(web, "b/pkg/pkg-3.0.tgz", data)
    publish(web, "b/pkg/pkg-3.0.tar.gz", b"another upload of the same version")
    got = cache.fetch("mirror://up/pkg/", digest, guess="pkg-3.0")
    assert got.read_bytes() == data and got.name == "pkg-3.0.tgz"
    expected = [f"/a/pkg/pkg-3.0.{s}" for s in GUESS_SUFFIXES] + [
        f"/b/pkg/pkg-3.0.{s}" for s in ("tar.bz2", "tar.gz", "tbz2", "tgz")]
    assert web.requests == expected
    # nothing fits: the error names the stem and every URL tried
    with pytest.raises(SourceError) as exc:
        cache.fetch(f"{web.url}/b/pkg/", "0" * 64, guess="pkg-4.0")
    assert "cannot fetch pkg-4.0.*" in str(exc.value) and f"{web.url}/b/pkg/pkg-4.0.txz" in str(exc.value)


def test_builtin_mirrors_and_a_configured_name_replacing_one(workspace):
    assert {"gnu", "sourceforge", "kernel"} <= set(BUILTIN_MIRRORS)
    ws = workspace.workspace
    assert load_settings(ws).mirrors["kernel"] == BUILTIN_MIRRORS["kernel"]
    config = ws / "repo" / "config.yaml"
    config.write_text(config.read_text() + "mirrors:\n  gnu: [http://127.0.0.1:9/gnu/]\n  local: [http://x/]\n")
    s = load_settings(ws)
    assert s.mirrors["gnu"] == ["http://127.0.0.1:9/gnu/"] and s.mirrors["local"] == ["http://x/"]
    assert s.mirrors["sourceforge"] == BUILTIN_MIRRORS["sourceforge"]


def test_bad_arguments_are_refused_when_recorded():
    with pytest.raises(RecipeError, match="not an OpenPGP key id"):
        addArchive.record(("x.tar.gz",), {"keyid": "nothex!"}, "recipe.py:3")
    with pytest.raises(RecipeError, match="recipe.py:4: addPatch: level must be a whole number"):
        addPatch.record(("x.patch",), {"level": "1"}, "recipe.py:4")
    with pytest.raises(RecipeError, match="both dir= and dest="):
        addSource.record(("x",), {"dir": "a", "dest": "b/c"}, "recipe.py:5")
    assert addArchive("x", keyid="0x9bb19a22").keyid == "9BB19A22"


def test_a_good_signature_by_another_workspace_key_is_refused(keys, tmp_path):
    from appbuilder.cook.sourcesig import check

    upstream, stranger = keys
    ring = tmp_path / "keys"
    ring.mkdir()
    (ring / "upstream.asc").write_bytes(upstream.public)
    (ring / "stranger.asc").write_bytes(stranger.public)
    data = tmp_path / "pkg-1.0.tar.gz"
    data.write_bytes(b"signed by the stranger")
    stranger.sign(data, tmp_path / "pkg-1.0.tar.gz.sig")
    cache = Lookaside(tmp_path / "lookaside")
    sig = [tmp_path / "pkg-1.0.tar.gz.sig"]
    assert check(data, sha(data.read_bytes()), stranger.keyid, keys_dir=ring, urls=(), local=sig, lookaside=cache) == sig[0]
    assert check(data, sha(data.read_bytes()), stranger.fingerprint, keys_dir=ring, urls=(), local=sig, lookaside=cache)
    with pytest.raises(SourceError) as exc:
        check(data, sha(data.read_bytes()), upstream.keyid, keys_dir=ring, urls=(), local=sig, lookaside=cache)
    assert f"a good signature of pkg-1.0.tar.gz, but by key {stranger.fingerprint}" in str(exc.value)
    assert f"not by key {upstream.keyid}" in str(exc.value)
    with pytest.raises(SourceError, match="there are no OpenPGP public keys in"):
        check(data, sha(data.read_bytes()), upstream.keyid, keys_dir=tmp_path / "none", urls=(), local=sig,
              lookaside=cache)


def test_a_member_is_taken_out_of_a_source_rpm_and_nothing_else(tmp_path):
    from appbuilder.cook.rpmsource import extract_member

    srpm = source_rpm(tmp_path, {"wanted-1.0.tar.gz": b"the tarball\n", "other.patch": b"a patch\n"})
    (tmp_path / "out").mkdir()
    out = extract_member(srpm, "wanted-1.0.tar.gz", tmp_path / "out" / "wanted-1.0.tar.gz")
    assert out.read_bytes() == b"the tarball\n" and sorted(p.name for p in out.parent.iterdir()) == [out.name]
    with pytest.raises(SourceError) as exc:
        extract_member(srpm, "missing.tar.gz", tmp_path / "out" / "missing.tar.gz")
    assert "holds no file missing.tar.gz" in str(exc.value) and "other.patch" in str(exc.value)
    (tmp_path / "broken.src.rpm").write_bytes(srpm.read_bytes()[:200])
    with pytest.raises(SourceError, match="broken.src.rpm"):
        extract_member(tmp_path / "broken.src.rpm", "wanted-1.0.tar.gz", tmp_path / "out" / "x")
