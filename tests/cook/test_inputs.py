"""What decides that a cook is up to date: the recipe's sources, the build requirements,
the toolchain group's pin and the code of appbuild that shapes a cook's output."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import appbuilder
from appbuilder.cook.inputs import COOK_CODE, input_hash, source_hash
from appbuilder.repository.versions import NVF, Flavor, Version

PACKAGE = Path(appbuilder.__file__).resolve().parent


def digest_of(copy: Path) -> str:
    out = subprocess.run([sys.executable, "-c", "import sys; sys.path.insert(0, sys.argv[1]); "
                          "from appbuilder.cook.inputs import code_digest; print(code_digest())", str(copy)],
                         capture_output=True, text=True, check=True)
    return out.stdout.strip()


def test_a_change_to_a_policy_changes_the_code_digest_and_a_change_elsewhere_does_not(tmp_path):
    copy = tmp_path / "src"
    shutil.copytree(PACKAGE, copy / "appbuilder", ignore=shutil.ignore_patterns("__pycache__"))
    before = digest_of(copy)
    assert before == digest_of(copy)  # stable
    serve = copy / "appbuilder/release/serve.py"
    serve.write_text(serve.read_text() + "\n# not something a cook's output depends on\n")
    assert digest_of(copy) == before
    policy = copy / "appbuilder/policy/components.py"
    policy.write_text(policy.read_text() + "\n# a policy changed\n")
    assert digest_of(copy) != before
    assert "policy" in COOK_CODE and "recipe" in COOK_CODE


def test_the_input_hash_takes_every_input(tmp_path):
    (tmp_path / "recipe.py").write_text("class R(PackageRecipe): pass\n")
    src = source_hash(tmp_path)
    reqs = [NVF("libhello:devel", Version.parse("cernvm@cvm:2/1.0-1-1"), Flavor("x86_64"))]
    base = input_hash(src, "x86_64", reqs, "group-toolchain=cernvm@cvm:2/12-1-1[is: x86_64]")
    newer = [NVF("libhello:devel", Version.parse("cernvm@cvm:2/1.0-1-2"), Flavor("x86_64"))]
    assert base != input_hash(src, "x86_64", newer, "group-toolchain=cernvm@cvm:2/12-1-1[is: x86_64]")
    assert base != input_hash(src, "x86", reqs, "group-toolchain=cernvm@cvm:2/12-1-1[is: x86_64]")
    assert base != input_hash(src, "x86_64", reqs, "group-toolchain=cernvm@cvm:2/12-1-2[is: x86_64]")
    (tmp_path / "patch.diff").write_text("--- a\n")
    assert base != input_hash(source_hash(tmp_path), "x86_64", reqs, "group-toolchain=cernvm@cvm:2/12-1-1[is: x86_64]")
