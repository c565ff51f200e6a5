"""How many processors this process may run on.

``os.cpu_count()`` counts the machine's; a batch system's slot (HTCondor, SLURM), a
container or ``taskset`` gives a process fewer, and the affinity mask says how many.
Parallel work (``make -j``, conversions, checks) sizes itself from this.
"""

from __future__ import annotations

import os


def usable_cpus() -> int:
    """The processors this process may run on (at least 1)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # not Linux
        return max(1, os.cpu_count() or 1)
