"""Cooks and image builds on a Dask cluster (``--cluster tcp://HOST:PORT`` or ``cluster:``
in ``repo/config.yaml``).

* :mod:`connect`: a :class:`distributed.Client` to a running scheduler, or to batch jobs
  started through dask-jobqueue (HTCondor, SLURM); one code path after that.
* :mod:`worker`: what runs on a worker: a cook (or an image build) in its own scratch
  workspace, from the repository read over HTTP, answering with a changeset (or image
  files).
* :mod:`schedule`: the coordinator: build order as task dependencies, submission, each
  changeset verified and committed as it arrives, the export kept current for dependents.

Workers share nothing with the coordinator but HTTP and what a task carries.
"""
