"""The appliance booted with contextualization: a test group holding group-cernvm plus a
recipe with the test's repository key, built in a scratch workspace that shares the
session appliance's repository (unchanged recipes are not cooked again). The
production group-cernvm never holds a test key."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import pytest

from appbuilder.fs import keys
from tests.conftest import PROJECT, make_settings, new_workspace, run_appbuild

TEST_REPO = "atlas.example.org"
# where the guest finds the host's services (guestfwd): the repository server, a dead
# proxy and a live one
SERVER_IP, DEAD_PROXY_IP, PROXY_IP = "10.0.2.100", "10.0.2.101", "10.0.2.102"
APPLIANCE_RECIPES = ["base-files", "busybox", "appliance-init", "cvmfs-client", "cvmfs-keys", "cernvm-context",
                     "appliance-sshd"]

TESTKEY_RECIPE = """class CvmfsTestkey(PackageRecipe):
    \"\"\"The key and servers of the repository the context test publishes.\"\"\"

    name = 'cvmfs-testkey'
    version = '1.0'

    def setup(r):
        r.addSource('{repo}.pub')
        r.addSource('{repo}.conf')
        r.Install('{repo}.pub', '%(sysconfdir)s/cvmfs/keys/{repo}.pub', mode=0o644)
        r.Install('{repo}.conf', '%(sysconfdir)s/cvmfs/config.d/{repo}.conf', mode=0o644)
"""

TEST_GROUP = """class GroupCernvmTest(GroupRecipe):
    \"\"\"group-cernvm plus the context test's repository key.\"\"\"

    name = 'group-cernvm-test'
    version = '1.0'
    imageGroup = True
    hostname = 'cernvm'
    loginUser = {login!r}
    kernelModules = {modules!r}

    def setup(r):
        r.addNewGroup('group-cernvm')
        r.add('cvmfs-testkey')
"""


@dataclasses.dataclass
class ContextImages:
    keypair: keys.KeyPair
    images: dict[str, Path]  # arch -> raw disk
    build_output: str


@pytest.fixture(scope="session")
def context_images(appliance, tmp_path_factory) -> ContextImages:
    from appbuilder.core.arch import get_arch
    from appbuilder.recipe.loader import load_group

    root = tmp_path_factory.mktemp("context-images")
    pair = keys.generate(TEST_REPO, root / "keys")
    ws = new_workspace(root, APPLIANCE_RECIPES)
    shutil.copy(PROJECT / "groups" / "group-cernvm.py", ws / "groups")
    recipe = ws / "recipes" / "cvmfs-testkey"
    recipe.mkdir()
    shutil.copy(pair.public_path, recipe / f"{TEST_REPO}.pub")
    (recipe / f"{TEST_REPO}.conf").write_text(f'CVMFS_SERVER_URL="http://{SERVER_IP}/cvmfs/@fqrn@"\n')
    (recipe / "recipe.py").write_text(TESTKEY_RECIPE.format(repo=TEST_REPO))
    production = load_group(PROJECT / "groups", "group-cernvm").instantiate(get_arch("x86_64"))
    (ws / "groups" / "group-cernvm-test.py").write_text(TEST_GROUP.format(modules=tuple(production.kernelModules),
                                                                             login=production.loginUser))

    s = make_settings(root, workspace=ws, cache=appliance.settings.cache)
    s = dataclasses.replace(s, repository=appliance.settings.repository)
    out = root / "images"
    proc = run_appbuild(s, "group-cernvm-test", "--format", "raw", "--arch", "all", "--output", str(out))
    images = {arch: next(out.glob(f"group-cernvm-test-*-{arch}.raw")) for arch in ("x86_64", "x86")}
    return ContextImages(pair, images, proc.stdout)
