"""The command line's wiring (appbuilder.cli): every command reachable and documented, argparse
errors as exit 2, appbuild's own errors as one ``error:`` line and exit 1, Ctrl-C and SIGTERM
as exit 130, group-NAME and ``images [group]`` routed, commands that need no workspace
working outside one, and ``appbuild settings`` showing the whole settings table."""

from __future__ import annotations

import argparse
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from appbuilder import cli
from appbuilder.core.settings import SETTINGS
from tests.conftest import PROJECT, VENV_BIN, env_for, run_appbuild, sigint_as_from_a_terminal

APPBUILD = str(VENV_BIN / "appbuild")


def clean_env(**extra: str) -> dict[str, str]:
    """The environment without any setting's variable (so nothing points at a workspace)."""
    names = {s.env for s in SETTINGS if s.env}
    env = {k: v for k, v in os.environ.items() if k not in names and not k.startswith("APPBUILD_")}
    env.update(extra)
    return env


def appbuild(*args: str, cwd: Path, env: dict[str, str] | None = None, timeout: float = 60):
    return subprocess.run([APPBUILD, *args], cwd=cwd, env=env or clean_env(), capture_output=True, text=True,
                          timeout=timeout)


@pytest.fixture
def nowhere(tmp_path) -> Path:
    """A directory with no workspace above it."""
    here = tmp_path / "elsewhere"
    here.mkdir()
    if any((p / "repo" / "config.yaml").is_file() for p in (here, *here.parents)):
        pytest.skip(f"{here} is inside a workspace")
    return here


def no_traceback(proc) -> None:
    assert "Traceback" not in proc.stderr and "Traceback" not in proc.stdout, proc.stderr


def subcommands(parser: argparse.ArgumentParser, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Every command path of *parser*: ("cook",), ("import", "rpm"), ..."""
    found = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found.append((*prefix, name))
                found += subcommands(sub, (*prefix, name))
    return found


COMMANDS = subcommands(cli.build_parser())
TOP = sorted({path[0] for path in COMMANDS})


# ------------------------------------------------------------------ help, documented commands


def test_help_lists_every_command(nowhere):
    proc = appbuild("--help", cwd=nowhere)
    assert proc.returncode == 0 and proc.stdout.startswith("usage: appbuild ")
    listed = re.findall(r"^    (\S+)\s", proc.stdout, re.M)
    assert sorted(listed) == TOP
    assert {"cook", "query", "show", "verify", "explain", "import", "gc", "resolve", "graph", "inspect", "upload",
            "images", "publish", "rollback", "serve", "fs", "context", "settings"} <= set(TOP)


@pytest.mark.parametrize("path", COMMANDS, ids=["-".join(p) for p in COMMANDS])
def test_every_command_has_help_and_it_works_anywhere(path, nowhere):
    proc = appbuild(*path, "--help", cwd=nowhere)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith(f"usage: appbuild {' '.join(path)} ") and proc.stderr == ""


def test_the_version():
    proc = subprocess.run([APPBUILD, "--version"], capture_output=True, text=True, env=clean_env())
    assert (proc.returncode, proc.stdout) == (0, f"appbuild {cli.__version__}\n")


def test_no_command_prints_the_help_and_exits_2(nowhere):
    proc = appbuild(cwd=nowhere)
    assert proc.returncode == 2 and proc.stdout.startswith("usage: appbuild ")


@pytest.mark.parametrize("argv", [
    ["nosuch"], ["--bogus"], ["cook"], ["cook", "recipes/x", "-j", "many"], ["show"], ["show", "x", "--arch"],
    ["import"], ["import", "tar", "x"], ["images", "show"], ["images", "diff", "1.0-1-1"], ["images", "--bogus"],
    ["upload", "ami", "d", "--method", "teleport"], ["publish", "g=1", "--channel", "weekly"], ["rollback", "g"],
    ["fs"], ["fs", "keygen", "-o", "k"], ["context", "make", "u.ini"], ["serve", "--port", "eighty"],
    ["group-x", "--bogus"], ["group-x", "--jobs", "two"],
], ids=lambda argv: " ".join(argv))
def test_unknown_commands_and_bad_arguments_exit_2_with_argparses_message(argv, nowhere):
    proc = appbuild(*argv, cwd=nowhere)
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    assert re.search(r"^usage: appbuild", proc.stderr, re.M)
    assert re.search(r"^appbuild[\w -]*: error: ", proc.stderr, re.M), proc.stderr
    no_traceback(proc)


# ------------------------------------------------------------------ routing


def test_group_name_goes_to_the_image_builder(nowhere, workspace):
    proc = appbuild("group-anything", "--help", cwd=nowhere)
    assert proc.returncode == 0 and proc.stdout.startswith("usage: appbuild group-NAME ")
    with pytest.raises(SystemExit) as exit_:  # the main parser alone does not know it
        cli.build_parser().parse_args(["group-anything"])
    assert exit_.value.code == 2
    args = cli.build_image_parser().parse_args(["group-x", "--format", "qcow2,vmdk", "--arch", "all"])
    assert (args.func, args.group, args.format, args.arch) == (cli.images.cmd_build_image, "group-x", "qcow2,vmdk", "all")
    proc = run_appbuild(workspace, "group-nosuch", "--no-cook", check=False)
    assert proc.returncode == 1 and proc.stderr.startswith("error: ") and "group-nosuch" in proc.stderr
    no_traceback(proc)


def test_images_with_a_group_or_nothing_is_images_list(workspace):
    def out(*args):
        proc = run_appbuild(workspace, *args)
        return proc.stdout

    assert out("images") == out("images", "list") and "no images" in out("images")
    assert out("images", "group-x") == out("images", "list", "group-x") and "group-x" in out("images", "group-x")
    assert out("images", "--json") == out("images", "group-x", "--json") == "[]\n"
    assert cli._images_argv(["images", "group-x", "--json"]) == ["images", "list", "group-x", "--json"]
    for kept in (["images", "show", "g=1"], ["images", "diff", "1", "2"], ["images", "list"], ["images", "-h"],
                 ["query", "images"]):
        assert cli._images_argv(kept) == kept
    helped = run_appbuild(workspace, "images", "--help")
    assert "list|show|diff" in helped.stdout.splitlines()[0]


# ------------------------------------------------------------------ errors and signals


def test_an_appbuild_error_is_one_line_and_exit_1(workspace):
    proc = run_appbuild(workspace, "show", "nosuchthing", check=False)
    assert proc.returncode == 1 and proc.stdout == ""
    assert proc.stderr.startswith("error: ") and "nosuchthing" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    no_traceback(proc)


def test_commands_that_need_no_workspace_work_outside_one(nowhere):
    need = appbuild("query", cwd=nowhere)
    assert need.returncode == 1 and need.stderr.startswith("error: no appbuild workspace here")
    no_traceback(need)
    listing = appbuild("explain", cwd=nowhere)
    assert listing.returncode == 0 and "Configure" in listing.stdout and "Install" in listing.stdout
    one = appbuild("explain", "Configure", cwd=nowhere)
    assert one.returncode == 0 and "r.Configure(" in one.stdout
    unknown = appbuild("explain", "Nope", cwd=nowhere)
    assert unknown.returncode == 1 and unknown.stderr.startswith("error: ") and "Nope" in unknown.stderr
    for path in (("inspect",), ("fs", "keygen"), ("context", "make"), ("upload", "ami")):
        assert appbuild(*path, "--help", cwd=nowhere).returncode == 0


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_ctrl_c_and_sigterm_exit_130(workspace, tmp_path, sig):
    served = tmp_path / "served"
    served.mkdir()
    proc = subprocess.Popen([APPBUILD, "serve", str(served), "--port", "0"], env=env_for(workspace),
                            cwd=workspace.workspace, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=sigint_as_from_a_terminal)
    try:
        first = proc.stdout.readline()
        assert first.startswith(f"serving {served}"), first
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, err
    assert err.strip() == "error: interrupted" and "Traceback" not in err


# ------------------------------------------------------------------ settings


def test_settings_prints_every_setting_and_where_it_comes_from(workspace):
    env = {**clean_env(), **{k: v for k, v in env_for(workspace).items() if k.startswith("APPBUILD_")},
           "APPBUILD_QEMU_ACCEL": "kvm"}
    proc = subprocess.run([APPBUILD, "settings"], env=env, cwd=workspace.workspace, capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert [line.split()[0] for line in lines] == [s.key or s.env for s in SETTINGS]
    by_name = {line.split()[0]: line for line in lines}
    for s in SETTINGS:
        assert s.help in by_name[s.key or s.env]
    assert "(repo/config.yaml)" in by_name["label"] and "cernvm@cvm:2" in by_name["label"]
    assert by_name["paths.data"].split()[1] == str(workspace.repository)
    assert "(environment APPBUILD_REPOSITORY)" in by_name["paths.data"]
    assert by_name["qemu.accel"].split()[1:3] == ["kvm", "(environment"]
    assert "(default)" in by_name["cook.command_timeout"] and by_name["cook.command_timeout"].split()[1] == "14400.0"
    assert "(unset)" in by_name["AWS_ENDPOINT_URL"]


@pytest.mark.parametrize("config, message", [
    ("lable: cernvm@cvm:2\n", "unknown setting 'lable' (did you mean 'label'?)"),
    ("cook:\n  comand_timeout: 60\n", "unknown setting cook.comand_timeout (did you mean 'command_timeout'?)"),
], ids=["top-level", "in-a-section"])
def test_a_damaged_config_gives_one_clear_error(workspace, config, message):
    config_file = workspace.workspace / "repo" / "config.yaml"
    config_file.write_text(config)
    for args in (["query"], ["settings"], ["show", "x"], ["images"], ["resolve", "group-x"]):
        proc = run_appbuild(workspace, *args, check=False)
        assert proc.returncode == 1, (args, proc.stdout, proc.stderr)
        assert proc.stderr.strip().splitlines() == [proc.stderr.strip()]
        assert proc.stderr.startswith(f"error: {config_file}: ") and message in proc.stderr, proc.stderr
        no_traceback(proc)
    assert run_appbuild(workspace, "explain").returncode == 0  # needs no settings


def test_the_readme_command_lines_parse():
    """Every ``appbuild ...`` line of the README's "Using it" section is accepted by the parser
    main() would give it (nothing is run)."""
    text = (PROJECT / "README.md").read_text()
    section = text.split("## Using it", 1)[1].split("\n#", 1)[0]
    lines = [line.split("#", 1)[0].split() for line in section.splitlines() if line.startswith("    appbuild ")]
    assert len(lines) > 10
    for argv in lines:
        argv = cli._images_argv(argv[1:])
        parser = cli.build_image_parser() if argv[0].startswith("group-") else cli.build_parser()
        args = parser.parse_args(argv)
        assert callable(args.func), argv


def test_main_in_process_turns_an_appbuild_error_into_exit_1(capsys, monkeypatch, nowhere):
    monkeypatch.chdir(nowhere)
    for s in SETTINGS:
        if s.env:
            monkeypatch.delenv(s.env, raising=False)
    before = signal.getsignal(signal.SIGTERM)
    try:
        assert cli.main(["query"]) == 1
        assert capsys.readouterr().err.startswith("error: no appbuild workspace here")
        assert signal.getsignal(signal.SIGTERM) is cli._terminate  # SIGTERM stops it as Ctrl-C does
        monkeypatch.setattr(sys, "argv", ["appbuild", "explain", "Install"])  # no argv: sys.argv
        assert cli.main() == 0 and "Install" in capsys.readouterr().out
    finally:
        signal.signal(signal.SIGTERM, before)


def test_the_program_leaves_quickly_with_its_output_whole_and_the_index_closed(capsys, monkeypatch, nowhere,
                                                                              workspace):
    """``appbuild`` (cli.run) skips the interpreter's teardown once its threads and exit
    handlers are done: what it printed arrives whole through a pipe, with main's status, and
    the repository index was closed first (no write-ahead log or shared-memory file stays
    beside ``index.sqlite``: a copy of that one file holds every commit)."""
    monkeypatch.chdir(nowhere)
    for s in SETTINGS:
        if s.env:
            monkeypatch.delenv(s.env, raising=False)
    assert cli.main(["explain"]) == 0
    expected = capsys.readouterr().out
    assert len(expected) > 1000  # in the pipe buffer, not yet written, when main returns
    proc = appbuild("explain", cwd=nowhere)
    assert proc.returncode == 0 and proc.stdout == expected
    failed = appbuild("explain", "Nope", cwd=nowhere)
    assert failed.returncode == 1 and failed.stderr.startswith("error: ") and failed.stdout == ""
    index_file = workspace.repository / "index.sqlite"
    run_appbuild(workspace, "query")  # opens (and makes) the index: WAL mode
    assert index_file.is_file()
    assert not [p.name for p in index_file.parent.iterdir() if p.name.startswith("index.sqlite-")]
