"""An ELF file the dependency scan cannot read is reported by path and reason, never
taken silently for a file without dependencies."""

from __future__ import annotations

import subprocess

from appbuilder.core.arch import get_arch
from appbuilder.policy.deps import scan_file
from appbuilder.policy.pipeline import run_policies
from appbuilder.recipe.base import PackageRecipe

DAMAGED = b"\x7fELF\x02\x01\x01" + bytes(9) + b"\x03\x00\x3e\x00" + b"not the rest of an ELF header" * 3


def host_objcopy(commands):
    for c in commands:
        subprocess.run(["objcopy", *c], check=True, capture_output=True)


def test_a_damaged_elf_file_has_a_problem_not_empty_dependencies(tmp_path):
    path = tmp_path / "broken"
    path.write_bytes(DAMAGED)
    found = scan_file(str(path), True)
    assert found is not None and found.problem and not found.requires and not found.provides


def test_the_policies_report_it_by_path_and_reason(tmp_path):
    root = tmp_path / "destdir"
    (root / "usr/bin").mkdir(parents=True)
    (root / "usr/bin/broken").write_bytes(DAMAGED)
    (root / "usr/bin/broken").chmod(0o755)
    recipe_class = type("R", (PackageRecipe,), {"name": "r", "version": "1", "setup": lambda self: None})
    result = run_policies(recipe_class(get_arch("x86_64")), root, declared=set(), objcopy=host_objcopy)
    assert len(result.warnings) == 1
    assert result.warnings[0].startswith("/usr/bin/broken: an ELF file that cannot be read (")
    assert result.warnings[0].endswith("); its dependencies are unknown")
