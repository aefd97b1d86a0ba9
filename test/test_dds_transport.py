"""The node's choice of Fast DDS transports: UDPv4 unless the user has chosen."""

from __future__ import annotations

import os

import pytest

from hrpose_ros.ros.dds_transport import NODE_TRANSPORTS, TRANSPORTS_VARIABLE, prefer_node_transports


def test_unset_variable_becomes_udp():
    env: dict[str, str] = {"ROS_DOMAIN_ID": "7"}
    assert prefer_node_transports(env) == "UDPv4"
    assert env == {"ROS_DOMAIN_ID": "7", TRANSPORTS_VARIABLE: "UDPv4"}


def test_empty_variable_counts_as_unset():
    env = {TRANSPORTS_VARIABLE: ""}
    assert prefer_node_transports(env) == NODE_TRANSPORTS
    assert env[TRANSPORTS_VARIABLE] == "UDPv4"


@pytest.mark.parametrize("chosen", ["DEFAULT", "SHM", "LARGE_DATA"])
def test_users_choice_stands(chosen):
    env = {TRANSPORTS_VARIABLE: chosen}
    assert prefer_node_transports(env) is None
    assert env == {TRANSPORTS_VARIABLE: chosen}


def test_default_is_this_process_environment(monkeypatch):
    monkeypatch.delenv(TRANSPORTS_VARIABLE, raising=False)
    assert prefer_node_transports() == "UDPv4"
    assert os.environ[TRANSPORTS_VARIABLE] == "UDPv4"
