"""The TCP data plane: ranges read and written intact, over one or several streams."""

from __future__ import annotations

import os

import pytest

from babyray.transfer import InProcessDataPlane, TcpDataPlane, TransferError, TransferServer, split_ranges


@pytest.fixture
def served():
    buffer = bytearray(os.urandom(1 << 20) * 24)
    server = TransferServer("127.0.0.1", lambda offset, size: memoryview(buffer)[offset : offset + size])
    try:
        yield buffer, server
    finally:
        server.close()


@pytest.mark.parametrize("streams", [1, 4])
def test_a_range_is_read_intact(served, streams):
    buffer, server = served
    dest = bytearray(20 << 20)
    TcpDataPlane().read_into(server.host, server.port, 12345, memoryview(dest), streams)
    assert dest == buffer[12345 : 12345 + (20 << 20)]


def test_a_range_is_written_intact(served):
    buffer, server = served
    src = os.urandom(9 << 20)
    TcpDataPlane().write_from(server.host, server.port, 77, memoryview(src))
    assert buffer[77 : 77 + len(src)] == src


def test_the_server_listens_only_on_the_given_address(served):
    _, server = served
    assert server.sock.getsockname()[0] == "127.0.0.1"


def test_reading_from_a_closed_server_raises_transfer_error(served):
    _, server = served
    server.close()
    with pytest.raises(TransferError):
        TcpDataPlane().read_into(server.host, server.port, 0, memoryview(bytearray(10)))


def test_large_ranges_split_into_streams_covering_everything():
    ranges = split_ranges(100 << 20, 4)
    assert len(ranges) == 4 and sum(n for _, n in ranges) == 100 << 20 and ranges[0][0] == 0


def test_in_process_data_plane_round_trips():
    plane = InProcessDataPlane()
    plane.register("h", 1, bytearray(16))
    plane.write_from("h", 1, 4, memoryview(b"abcd"))
    out = bytearray(4)
    plane.read_into("h", 1, 4, memoryview(out))
    assert out == b"abcd"
