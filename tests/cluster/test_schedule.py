"""The coordinator's side of a cluster run that needs no cluster: the address it serves the
repository's export on."""

from __future__ import annotations

import ipaddress
import socket

import pytest

from appbuilder.cluster.schedule import _local_address


@pytest.mark.parametrize("scheduler", ["tcp://127.0.0.1:8786", "tcp://localhost:8786", "tcp://[::1]:8786"])
def test_a_scheduler_on_this_machine_reaches_it_on_the_loopback(scheduler):
    assert _local_address(scheduler) == "127.0.0.1"


@pytest.mark.parametrize("scheduler", ["tcp://10.255.255.1:8786", "tls://192.0.2.77", "tcp://198.51.100.3:99999"])
def test_a_scheduler_elsewhere_gets_an_address_of_this_machine(scheduler):
    """The source address the routing table picks: one this machine can listen on."""
    address = _local_address(scheduler)
    ipaddress.ip_address(address)
    with socket.socket(socket.AF_INET6 if ":" in address else socket.AF_INET) as s:
        s.bind((address, 0))
