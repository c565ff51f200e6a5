"""Faults: a worker killed in the middle of a cook (the task runs again on the other worker
and the run finishes), a scheduler nobody answers at (a clear error naming the address),
a batch system that is not there."""

from __future__ import annotations

import re
import subprocess
import time

import pytest

from appbuilder.cluster.connect import ClusterError, connect
from tests.conftest import VENV_BIN, env_for, free_port, make_settings, new_workspace, seed_repository

SLOW_RECIPE = """\
class Slowpoke(PackageRecipe):
    \"\"\"Takes its time, so that its worker can be killed in the middle of the cook.\"\"\"

    name = 'slowpoke'
    version = '1.0'

    def setup(r):
        r.Run('sleep 20')
        r.Create('%(datadir)s/slowpoke/done', contents='done\\n')
"""


@pytest.mark.slow
def test_a_worker_killed_in_the_middle_of_a_cook(tmp_path, toolchain_repo, dask_cluster):
    from appbuilder.repository.repo import Repository

    ws = new_workspace(tmp_path)
    (ws / "recipes" / "slowpoke").mkdir()
    (ws / "recipes" / "slowpoke" / "recipe.py").write_text(SLOW_RECIPE)
    s = seed_repository(make_settings(tmp_path, workspace=ws), toolchain_repo)
    cook = subprocess.Popen([str(VENV_BIN / "appbuild"), "cook", "recipes/slowpoke", "--cluster", dask_cluster.address],
                            env=env_for(s), cwd=ws, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        victim = None
        deadline = time.monotonic() + 120
        with dask_cluster.client() as client:
            while victim is None and time.monotonic() < deadline and cook.poll() is None:
                for address, keys in client.processing().items():
                    if any(str(k).startswith("cook-slowpoke-") for k in keys):
                        victim = address
                time.sleep(0.2)
            assert victim, "the cook never started on a worker"
            names = {a: str(i.get("name")) for a, i in client.scheduler_info(n_workers=-1)["workers"].items()}
        time.sleep(8)  # well into the cook (its build root, then the build)
        assert cook.poll() is None, "the cook ended before its worker could be killed"
        dask_cluster.kill(names[victim])
        out, err = cook.communicate(timeout=600)
    finally:
        if cook.poll() is None:
            cook.kill()
            cook.wait()
    assert cook.returncode == 0, out + err
    repo = Repository(s.repository, s.label)
    nvf = repo.find_one("slowpoke", arch="x86_64")
    assert f"cooked {nvf}" in out
    m = re.search(r"slowpoke \(x86_64\) on (tcp://\S+): build", out + err)
    assert m and m.group(1) != victim, out + err  # it ran again, elsewhere
    assert [f.path for f in repo.get(repo.find_one("slowpoke:data", arch="x86_64")).files
            if f.type == "file"] == ["/usr/share/slowpoke/done"]


@pytest.mark.slow
def test_the_coordinator_killed_then_started_again(tmp_path, toolchain_repo, dask_cluster):
    """kill -9 of `appbuild cook --cluster` once libhello is committed: the repository is sound
    (nothing half-committed), and the run started again skips libhello and cooks hello."""
    import os
    import signal

    from appbuilder.repository.repo import Repository

    ws = new_workspace(tmp_path, ["libhello", "hello"])
    s = seed_repository(make_settings(tmp_path, workspace=ws), toolchain_repo)
    argv = [str(VENV_BIN / "appbuild"), "cook", "recipes/", "--cluster", dask_cluster.address]
    cook = subprocess.Popen(argv, env=env_for(s), cwd=ws, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, start_new_session=True)
    repo = Repository(s.repository, s.label)
    try:
        deadline = time.monotonic() + 300
        while not repo.versions("libhello") and time.monotonic() < deadline and cook.poll() is None:
            time.sleep(0.05)
        assert repo.versions("libhello"), "libhello was never committed"
        os.killpg(cook.pid, signal.SIGKILL)
    finally:
        cook.wait(30)
    libhello = repo.find_one("libhello", arch="x86_64")
    check = subprocess.run([str(VENV_BIN / "appbuild"), "verify"], env=env_for(s), cwd=ws, capture_output=True,
                           text=True, timeout=600)
    assert check.returncode == 0, check.stdout + check.stderr
    again = subprocess.run(argv, env=env_for(s), cwd=ws, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stdout + again.stderr
    assert f"libhello (x86_64) is up to date: {libhello}" in again.stdout + again.stderr
    assert f"cooked {repo.find_one('hello', arch='x86_64')} in " in again.stdout
    assert repo.versions("libhello") == [libhello]  # not cooked twice


def test_an_unreachable_scheduler_is_one_clear_error(tmp_path):
    ws = new_workspace(tmp_path, ["hello"])
    (ws / "repo" / "config.yaml").write_text((ws / "repo" / "config.yaml").read_text()
                                             + "cluster:\n  connect_timeout: 2\n")
    s = make_settings(tmp_path, workspace=ws)
    address = f"tcp://127.0.0.1:{free_port()}"
    t = time.monotonic()
    proc = subprocess.run([str(VENV_BIN / "appbuild"), "cook", "recipes/hello", "--cluster", address],
                          env=env_for(s), cwd=ws, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1
    assert time.monotonic() - t < 30
    assert "Traceback" not in proc.stderr + proc.stdout
    assert f"cannot reach the Dask scheduler at {address} within 2 s" in proc.stderr, proc.stderr
    # a word that is no address
    proc = subprocess.run([str(VENV_BIN / "appbuild"), "cook", "recipes/hello", "--cluster", "build1:port"],
                          env=env_for(s), cwd=ws, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert "'tcp://build1:port' is not a scheduler address: expected tcp://HOST:PORT" in proc.stderr


def test_a_batch_cluster_is_made_from_the_settings(tmp_path, monkeypatch):
    """cluster.kind: the dask-jobqueue cluster gets the configured cores, memory and options;
    without the batch system's submit command here, a clear error (and nothing left running)."""
    from dask_jobqueue import SLURMCluster

    from appbuilder.cluster.connect import JOBQUEUE

    ws = new_workspace(tmp_path)
    s = make_settings(tmp_path, workspace=ws).with_overrides({
        "cluster.kind": "slurm", "cluster.cores": 4, "cluster.memory": "8GB", "cluster.jobs": 3,
        "cluster.options": {"walltime": "02:00:00", "account": "lhc",
                            "scheduler_options": {"host": "127.0.0.1", "dashboard_address": ":0"}}})
    assert JOBQUEUE["slurm"] == SLURMCluster.__name__
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))  # no sbatch, no condor_submit
    with pytest.raises(ClusterError, match=r"cluster.kind slurm: sbatch is not on PATH here"):
        connect(s)
    htcondor = s.with_overrides({"cluster.kind": "htcondor", "cluster.options": {"disk": "10GB"}})
    with pytest.raises(ClusterError, match=r"cluster.kind htcondor: condor_submit is not on PATH here"):
        connect(htcondor)
    # the job script a submit node would get
    from appbuilder.cluster.connect import job_cluster

    jobs = job_cluster(s)
    try:
        script = jobs.job_script()
    finally:
        jobs.close()
    assert "#SBATCH --cpus-per-task=4" in script and "#SBATCH -A lhc" in script and "#SBATCH -t 02:00:00" in script
    assert "--nthreads 4" in script and "--nworkers 1" in script or "--nworkers" not in script
