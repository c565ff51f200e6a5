"""The nightly writes its report whatever happens: a stage that fails with an error
appbuild did not expect is reported with its kind and where, and Ctrl-C still leaves a
report that says it was interrupted."""

from __future__ import annotations

import json

import pytest

from appbuilder.ci.nightly import Nightly, load_config


class BrokenBuild(Nightly):
    """A nightly whose build stage meets a bug (a real exception, not an AppbuildError)."""

    def _build(self):
        return {}["no such key"]


class InterruptedBuild(Nightly):
    def _build(self):
        raise KeyboardInterrupt


def report_of(directory):
    data = json.loads((directory / "report.json").read_text())
    assert (directory / "report.html").read_text().strip()
    return data, {st["name"]: st for st in data["stages"]}


def test_an_unexpected_error_in_a_stage_is_reported_and_the_report_written(workspace, tmp_path):
    out = tmp_path / "report"
    BrokenBuild(workspace, load_config(None, {"groups": "group-nothing"}), out, say=lambda m: None).run(None)
    data, stages = report_of(out)
    assert data["status"] == "failed"
    assert stages["build"]["status"] == "failed"
    assert stages["build"]["detail"].startswith("unexpected KeyError: 'no such key'")
    assert "_build" in stages["build"]["detail"]  # where: the traceback's last frames
    assert [s["name"] for s in data["stages"]][-1] == "report"  # the stages after it still ran


def test_an_interrupted_nightly_still_writes_its_report(workspace, tmp_path):
    out = tmp_path / "report"
    with pytest.raises(KeyboardInterrupt):
        InterruptedBuild(workspace, load_config(None, {"groups": "group-nothing"}), out, say=lambda m: None).run(None)
    data, stages = report_of(out)
    assert data["status"] == "interrupted"
    assert "build" not in stages or stages["build"]["status"] != "ok"
