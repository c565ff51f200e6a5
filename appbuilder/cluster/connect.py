"""Reaching the cluster: a Dask client to a scheduler, or to batch jobs (dask-jobqueue).

``cluster.scheduler`` (``--cluster tcp://HOST:PORT``, ``APPBUILD_CLUSTER``) names a
running scheduler. Without it, ``cluster.kind`` (``htcondor`` or ``slurm``) starts the
workers as batch jobs through dask-jobqueue (``cluster.cores``, ``cluster.memory``,
``cluster.jobs``, ``cluster.options``); the scheduler then runs in this process. Either
way the rest of appbuild sees one :class:`Cluster` holding a connected client.

A scheduler that does not answer within ``cluster.connect_timeout`` seconds is a
:class:`ClusterError` naming the address, never a traceback.
"""

from __future__ import annotations

import logging
import re
import shutil
from dataclasses import dataclass
from typing import Any, Callable

from appbuilder.core.errors import AppbuildError
from appbuilder.core.settings import Settings

JOBQUEUE = {"htcondor": "HTCondorCluster", "slurm": "SLURMCluster"}


class ClusterError(AppbuildError):
    """The cluster cannot be reached or used."""


def configured(settings: Settings) -> bool:
    """Whether cooks and builds go to a cluster (a scheduler address or a batch system is set)."""
    return bool(settings.get("cluster.scheduler") or settings.get("cluster.kind"))


def scheduler_address(text: str) -> str:
    """``tcp://HOST:PORT`` (also ``tls://``, ``ucx://``; a bare ``HOST:PORT`` means tcp)."""
    text = text.strip()
    if "://" not in text:
        text = "tcp://" + text
    if not re.match(r"^(tcp|tls|ucx|ws|wss)://[^/\s:]+(:\d+)?$|^(tcp|tls)://\[[0-9a-fA-F:]+\](:\d+)?$", text):
        raise ClusterError(f"{text!r} is not a scheduler address: expected tcp://HOST:PORT (e.g. tcp://build1:8786)")
    return text


@dataclass
class Cluster:
    """A connected client, and the batch-job cluster behind it when appbuild started one."""

    client: Any  # distributed.Client
    address: str
    jobs: Any = None  # a dask_jobqueue cluster, closed with this

    def workers(self) -> int:
        return len(self.client.scheduler_info(n_workers=-1).get("workers", {}))

    def wait(self) -> "Cluster":
        """This cluster (connected already; :class:`PendingCluster` waits here)."""
        return self

    def close(self) -> None:
        try:
            self.client.close()
        finally:
            if self.jobs is not None:
                self.jobs.close()

    def __enter__(self) -> "Cluster":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _quiet() -> None:
    """distributed logs each failed connection attempt; the error we raise says it once."""
    for name in ("distributed.client", "distributed.comm.tcp", "distributed.core", "distributed.comm.core"):
        logging.getLogger(name).setLevel(logging.CRITICAL)


def connect(settings: Settings) -> Cluster:
    """A :class:`Cluster` for *settings* (see the module docstring)."""
    from distributed import Client

    _quiet()
    timeout = settings.get("cluster.connect_timeout")
    address = settings.get("cluster.scheduler")
    if address:
        address = scheduler_address(address)
        try:
            client = Client(address, timeout=timeout, set_as_default=False)
        except (OSError, TimeoutError) as exc:
            raise ClusterError(f"cannot reach the Dask scheduler at {address} within {timeout:g} s "
                               f"({_reason(exc, address)}); is `dask scheduler` running there, and is the port "
                               "open? (--cluster / cluster.scheduler in repo/config.yaml)") from None
        return Cluster(client, address)
    kind = settings.get("cluster.kind")
    if not kind:
        raise ClusterError("no cluster configured: give --cluster tcp://HOST:PORT, or cluster.scheduler or "
                           "cluster.kind in repo/config.yaml")
    return _batch_jobs(settings, kind, timeout)


class PendingCluster:
    """:func:`connect` running on a thread while the caller goes on (reads recipes, resolves
    the toolchain): Dask's import and the handshake with the scheduler are then out of the
    way. A scheduler's address is known at once (a word that is no address is refused
    here); the client, the worker count and the batch jobs once connected: their first use
    waits for the connection and raises what connecting raised. *on_connect* is called once
    with the :class:`Cluster`, by the first use (a progress line naming the workers)."""

    def __init__(self, settings: Settings, on_connect: Callable[[Cluster], None] | None = None):
        import threading

        given = settings.get("cluster.scheduler")
        self._address = scheduler_address(given) if given else None
        self._on_connect = on_connect
        self._done: dict = {}

        def run() -> None:
            try:
                self._done["cluster"] = connect(settings)
            except BaseException as exc:  # handed to the first use
                self._done["error"] = exc

        self._thread = threading.Thread(target=run, name="cluster-connect", daemon=True)
        self._thread.start()

    def wait(self) -> Cluster:
        """The connected cluster (waits for the connection; raises what connecting raised)."""
        self._thread.join()
        if "error" in self._done:
            raise self._done["error"]
        cluster = self._done["cluster"]
        if self._on_connect is not None:
            announce, self._on_connect = self._on_connect, None
            announce(cluster)
        return cluster

    @property
    def address(self) -> str:
        return self._address or self.wait().address

    @property
    def client(self):
        return self.wait().client

    @property
    def jobs(self):
        return self.wait().jobs

    def workers(self) -> int:
        return self.wait().workers()

    def close(self) -> None:
        """Close the connection (once made; a failed one leaves nothing to close)."""
        self._thread.join()
        if "cluster" in self._done:
            self._done["cluster"].close()

    def __enter__(self) -> "PendingCluster":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _reason(exc: BaseException, address: str) -> str:
    text = str(exc).replace(f" to {address}", "").strip()
    return text or type(exc).__name__


def job_cluster(settings: Settings):
    """The dask-jobqueue cluster ``cluster.kind`` and its settings describe (its scheduler runs
    in this process; no job is submitted yet)."""
    import dask_jobqueue

    kind = settings.get("cluster.kind")
    cls = getattr(dask_jobqueue, JOBQUEUE[kind])
    options = dict(settings.get("cluster.options"))
    options.setdefault("cores", settings.get("cluster.cores"))
    options.setdefault("memory", settings.get("cluster.memory"))
    options.setdefault("processes", 1)  # one worker per job: a cook uses the job's cores itself
    try:
        return cls(**options)
    except (TypeError, ValueError) as exc:
        raise ClusterError(f"cluster.kind {kind}: {cls.__name__} refuses the settings cluster.cores/.memory/.options: "
                           f"{exc}") from None
    except OSError as exc:
        raise ClusterError(f"cluster.kind {kind}: cannot start the scheduler for the batch jobs: {exc}") from None


def _batch_jobs(settings: Settings, kind: str, timeout: float) -> Cluster:
    """Workers as HTCondor or SLURM jobs: the scheduler runs here, the jobs connect back."""
    import dask_jobqueue
    from distributed import Client

    submit = getattr(dask_jobqueue, JOBQUEUE[kind]).job_cls.submit_command.split()[0]
    if shutil.which(submit) is None:
        raise ClusterError(f"cluster.kind {kind}: {submit} is not on PATH here: run appbuild on a submit node of "
                           f"the {kind} pool (or set cluster.scheduler to a running scheduler)")
    jobs = job_cluster(settings)
    jobs.scale(jobs=settings.get("cluster.jobs"))
    try:
        client = Client(jobs, timeout=timeout, set_as_default=False)
    except (OSError, TimeoutError) as exc:
        jobs.close()
        raise ClusterError(f"cluster.kind {kind}: cannot connect to its scheduler {jobs.scheduler_address}: "
                           f"{exc}") from None
    return Cluster(client, jobs.scheduler_address, jobs)
