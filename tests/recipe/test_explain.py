"""``appbuild explain``: the recipe actions and their docstrings, through the real CLI."""

from __future__ import annotations

import inspect
import os
import subprocess

import pytest

from appbuilder.core.errors import AppbuildError
from appbuilder.recipe.actions import BUILD, POLICY, REGISTRY, SOURCE
from appbuilder.recipe.explain import explain, list_actions
from tests.conftest import VENV_BIN, run_appbuild


def test_explain_lists_every_action_with_its_summary(settings):
    out = run_appbuild(settings, "explain").stdout
    assert out == list_actions() + "\n"
    listed = [cls for cls in REGISTRY.values() if cls.phase in (SOURCE, BUILD, POLICY)]
    assert {"addSource", "addArchive", "Configure", "Make", "ComponentSpec"} <= {c.__name__ for c in listed}
    for cls in listed:
        summary = inspect.getdoc(cls).splitlines()[0]
        assert f"  {cls.__name__:32} {summary}" in out.splitlines(), cls.__name__
    # grouped by phase, in that order
    assert out.index("source actions:") < out.index("build actions:") < out.index("policy settings:")
    assert out.index("addSource") < out.index("build actions:") < out.index("Configure") < out.index("policy settings:")


def test_explain_one_action_prints_signature_and_docstring(settings):
    from appbuilder.recipe.build_actions import Configure

    out = run_appbuild(settings, "explain", "Configure").stdout
    assert out.startswith("r.Configure(args: 'str' = ''")
    assert "[build action]" in out
    assert inspect.getdoc(Configure) in out
    assert "--build=%(build)s" in out


def test_explain_works_outside_a_workspace(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("APPBUILD_")}

    def appbuild(*args):
        return subprocess.run([str(VENV_BIN / "appbuild"), *args], cwd=tmp_path, env=env,
                              capture_output=True, text=True, timeout=60)

    assert "no appbuild workspace here" in appbuild("query").stderr  # really outside one
    proc = appbuild("explain", "addSource")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("r.addSource(name: 'str'") and "[source action]" in proc.stdout


def test_explain_unknown_name_suggests(settings):
    proc = run_appbuild(settings, "explain", "Confgure", check=False)
    assert proc.returncode == 1
    assert "no action or policy named 'Confgure'; did you mean Configure" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_explain_functions_directly():
    assert explain("Make").startswith("r.Make(")
    with pytest.raises(AppbuildError, match="did you mean Install"):
        explain("Instal")
    with pytest.raises(AppbuildError) as exc:
        explain("qqqqqqqq")
    assert "did you mean" not in str(exc.value)
