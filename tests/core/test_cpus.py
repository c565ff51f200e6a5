"""usable_cpus: the processors this process may run on, not the machine's count."""

from __future__ import annotations

import os
import subprocess
import sys

from appbuilder.core.cpus import usable_cpus


def test_usable_cpus_follows_the_affinity_mask():
    assert usable_cpus() == len(os.sched_getaffinity(0)) >= 1
    one = sorted(os.sched_getaffinity(0))[0]
    # a batch slot or `taskset` gives a process fewer processors than the machine has
    out = subprocess.run(["taskset", "--cpu-list", str(one), sys.executable, "-c",
                          "from appbuilder.core.cpus import usable_cpus; print(usable_cpus())"],
                         capture_output=True, text=True, check=True, cwd=os.path.dirname(os.path.dirname(
                             os.path.dirname(os.path.abspath(__file__)))))
    assert out.stdout.strip() == "1"
