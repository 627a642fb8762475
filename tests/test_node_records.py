"""babyray.cli.node_records and the cluster a command is about, on records in a temp dir."""

from __future__ import annotations

import argparse
import json

from babyray.cli import node_records
from babyray.cli.connection import cluster_address


def test_records_are_per_network_namespace_and_name_the_token_and_head(tmp_path, monkeypatch):
    monkeypatch.setenv("BABYRAY_STATE_DIR", str(tmp_path / "records"))
    path = node_records.record_path("/sessions/session_a")
    assert path == str(tmp_path / "records" / "session_a.json")
    node_records.write_record(
        path,
        {
            "session_dir": "/sessions/session_a",
            "head_address": "10.0.0.1:1900",
            "token_file": "/sessions/session_a/auth_token",
        },
    )
    other_host = {"session_dir": "/sessions/session_b", "head_address": "10.0.0.2:1900", "netns": "net:[1]"}
    (tmp_path / "records" / "session_b.json").write_text(json.dumps(other_host))  # a simulated host's node
    (tmp_path / "records" / "session_c.json").write_text("{half")  # being written

    assert [record["session_dir"] for _, record in node_records.read_records(None)] == ["/sessions/session_a"]
    assert [record["session_dir"] for _, record in node_records.read_records(None, all_hosts=True)] == [
        "/sessions/session_a",
        "/sessions/session_b",
    ]
    assert node_records.recorded_token_file("10.0.0.1:1900") == "/sessions/session_a/auth_token"
    assert node_records.recorded_token_file("10.0.0.2:1900") is None
    assert node_records.head_address() == "10.0.0.1:1900"


def test_the_cluster_address_is_the_argument_else_the_environment_else_a_recorded_head(tmp_path, monkeypatch):
    monkeypatch.setenv("BABYRAY_STATE_DIR", str(tmp_path))
    monkeypatch.delenv("BABYRAY_ADDRESS", raising=False)
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    args = argparse.Namespace(address=None, temp_dir=None)
    assert cluster_address(args) is None
    record = {"session_dir": "/sessions/session_a", "head_address": "10.0.0.1:1900"}
    node_records.write_record(node_records.record_path("/sessions/session_a"), record)
    assert cluster_address(args) == "10.0.0.1:1900"
    monkeypatch.setenv("BABYRAY_ADDRESS", "10.0.0.3:1900")
    assert cluster_address(args) == "10.0.0.3:1900"
    assert cluster_address(argparse.Namespace(address="10.0.0.4:1900", temp_dir=None)) == "10.0.0.4:1900"
