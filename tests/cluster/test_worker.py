"""What a task carries: a workspace's files as bytes, recreated on the worker inside its scratch
workspace only."""

from __future__ import annotations

import os

import pytest

from appbuilder.cluster.worker import FileData, files_of, task_workspace, write_files
from appbuilder.core.errors import AppbuildError


def test_files_links_and_modes_travel_and_a_fifo_is_refused_unread(tmp_path):
    ws = tmp_path / "ws"
    recipe = ws / "recipes" / "hello"
    recipe.mkdir(parents=True)
    (recipe / "recipe.py").write_text("class Hello: pass\n")
    (recipe / "run.sh").write_text("#!/bin/sh\n")
    (recipe / "run.sh").chmod(0o755)
    (recipe / "latest").symlink_to("run.sh")
    carried = {f.path: f for f in files_of(ws, [recipe])}
    assert carried["recipes/hello/run.sh"].mode == 0o755 and carried["recipes/hello/latest"].link == "run.sh"
    write_files(tmp_path / "worker", list(carried.values()))
    assert (tmp_path / "worker/recipes/hello/recipe.py").read_text() == "class Hello: pass\n"
    assert os.readlink(tmp_path / "worker/recipes/hello/latest") == "run.sh"
    os.mkfifo(recipe / "pipe")  # reading it would wait for a writer forever
    with pytest.raises(AppbuildError, match="pipe is neither a file"):
        files_of(ws, [recipe])


@pytest.mark.parametrize("path", ["/etc/passwd", "../outside", "recipes/../../outside", ""])
def test_a_task_cannot_write_outside_its_workspace(tmp_path, path):
    with pytest.raises(AppbuildError, match="not a relative path inside"):
        write_files(tmp_path / "worker", [FileData(path, b"x")])
    assert not (tmp_path / "outside").exists()


def test_one_recipes_tasks_cook_at_one_path_and_never_share_a_workspace(tmp_path):
    """task_workspace: one after another, a recipe's tasks get the same directory (so the
    answers of reading the recipe, which name its path, are kept between them); while one
    runs, another gets a directory of its own; what a killed task left is cleared."""
    tasks = tmp_path / "tasks"
    with task_workspace(tasks, "hello-x86_64-") as first:
        (first / "made").write_text("x")
        with task_workspace(tasks, "hello-x86_64-") as second:
            assert second != first and not any(second.iterdir())
    assert not first.exists() and not second.exists()
    (tasks / "hello-x86_64-0").mkdir()  # a task killed midway: its lock went with it
    (tasks / "hello-x86_64-0" / "left").write_text("x")
    with task_workspace(tasks, "hello-x86_64-") as again:
        assert again == first and not any(again.iterdir())
