"""Token authentication's parts: signed messages, connection handshakes, token files, the
CLI's token (``babyray start --head``, ``get-auth-token``, ``--no-auth``) and init()'s
``auth_mode``. The attacks on a running cluster are in test_auth_attacks.py and
test_auth_multihost.py."""

from __future__ import annotations

import hashlib
import hmac
import os
import pickle
import socket
import stat
import threading
from pathlib import Path

import pytest
from cli_cluster import cli, cli_env, run_driver, start, start_args, stop_all

import babyray as ray
from babyray import auth
from babyray.cluster import free_port
from babyray.store.alloc_channel import AllocClient, AllocServer
from babyray.transfer import TcpDataPlane, TransferError, TransferServer


class CreatesMarker:
    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self):
        return open, (self.path, "w")


@pytest.fixture
def token():
    """This test process proves a fresh token; the previous one is restored afterwards."""
    before = auth.current_token()
    auth.use_token(auth.generate_token())
    yield auth.current_token()
    auth.use_token(before)


def _dropped(sock: socket.socket) -> bool:
    """The peer closed ``sock`` without sending anything more (a reset counts: it closed with
    our bytes unread)."""
    sock.settimeout(10)
    try:
        return sock.recv(100) == b""
    except ConnectionResetError:
        return True


def _signer() -> auth.MessageSigner:
    return auth.MessageSigner({b"ack-bytes": "ACK"})


def test_a_signed_message_reads_back_once_and_a_replay_is_refused(token):
    sender, receiver = _signer(), _signer()
    frame = sender.dumps({"task": 1})
    assert receiver.loads(frame) == {"task": 1}
    with pytest.raises(auth.AuthRejected, match="replayed"):
        receiver.loads(frame)


def test_messages_may_arrive_out_of_order_but_not_twice(token):
    sender, receiver = _signer(), _signer()
    frames = [sender.dumps(i) for i in range(5)]
    assert [receiver.loads(frames[i]) for i in (3, 0, 4, 1, 2)] == [3, 0, 4, 1, 2]
    for frame in frames:
        with pytest.raises(auth.AuthRejected):
            receiver.loads(frame)


def test_an_unsigned_pickle_is_refused_without_being_unpickled(token, tmp_path):
    marker = tmp_path / "ran"
    with pytest.raises(auth.AuthRejected, match="without a token proof"):
        _signer().loads(pickle.dumps(CreatesMarker(str(marker))))
    assert not marker.exists()


def test_a_message_signed_with_another_token_or_altered_is_refused(token, tmp_path):
    marker = tmp_path / "ran"
    frame = _signer().dumps(CreatesMarker(str(marker)))
    altered = frame[:-2] + bytes([frame[-2] ^ 1]) + frame[-1:]
    with pytest.raises(auth.AuthRejected, match="wrong token proof"):
        _signer().loads(altered)
    auth.use_token(auth.generate_token())
    with pytest.raises(auth.AuthRejected, match="wrong token proof"):
        _signer().loads(frame)
    assert not marker.exists()


def test_acknowledgements_are_recognised_by_their_exact_bytes(token):
    assert _signer().loads(b"ack-bytes") == "ACK"


def test_a_forked_child_signs_with_its_own_sender_id(token):
    """Parent and child counters start equal after a fork: with one sender id the receiver
    would take the child's messages for replays of the parent's."""
    receiver = _signer()
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.write(write_end, _signer().dumps("from the child"))
        os._exit(0)
    os.waitpid(pid, 0)
    child_frame = os.read(read_end, 65536)
    os.close(read_end)
    os.close(write_end)
    assert receiver.loads(_signer().dumps("from the parent")) == "from the parent"
    assert receiver.loads(child_frame) == "from the child"


def _serve_buffer() -> tuple[TransferServer, bytearray]:
    buffer = bytearray(os.urandom(4096))
    return TransferServer(
        "127.0.0.1", lambda offset, size: memoryview(buffer)[offset : offset + size]
    ), buffer


def test_the_data_plane_serves_a_client_with_the_token_and_refuses_one_without(token):
    server, buffer = _serve_buffer()
    try:
        dest = bytearray(100)
        TcpDataPlane().read_into(server.host, server.port, 50, memoryview(dest))
        assert dest == buffer[50:150]
        before = bytes(buffer)
        with socket.create_connection((server.host, server.port), timeout=10) as sock:
            server_nonce = sock.recv(auth.NONCE_SIZE)
            client_nonce = os.urandom(auth.NONCE_SIZE)
            wrong = hmac.new(
                b"not the token", b"client" + b"data_plane" + server_nonce + client_nonce, hashlib.sha256
            ).digest()
            sock.sendall(client_nonce + wrong + b"BRDP" + bytes(21) + b"x" * 64)
            assert _dropped(sock)
        assert bytes(buffer) == before
    finally:
        server.close()


def test_a_client_refuses_a_data_plane_server_that_does_not_prove_the_token(token):
    listener = socket.create_server(("127.0.0.1", 0))

    def impostor() -> None:
        conn, _ = listener.accept()
        with conn:
            conn.sendall(os.urandom(auth.NONCE_SIZE))
            conn.recv(auth.NONCE_SIZE + auth.PROOF_SIZE + 25)
            conn.sendall(os.urandom(auth.PROOF_SIZE) + b"attacker's bytes" * 10)

    thread = threading.Thread(target=impostor, daemon=True)
    thread.start()
    dest = bytearray(100)
    with pytest.raises(TransferError, match="did not prove the cluster token"):
        TcpDataPlane().read_into("127.0.0.1", listener.getsockname()[1], 0, memoryview(dest))
    assert dest == bytearray(100)
    thread.join(10)
    listener.close()


def test_the_allocation_channel_wants_the_token(token, tmp_path):
    calls = []
    server = AllocServer(
        f"auth-test-{os.getpid()}",
        lambda oid, size, writer, owner: calls.append(oid) or (0, None),
        lambda client, size: None,
        lambda client, offsets: None,
        lambda oid, size, writer, offset, owner: None,
    )
    try:
        client = AllocClient(f"auth-test-{os.getpid()}")
        assert client.allocate("a", 10, "me") == (0, None, False)
        client.close()
        marker = tmp_path / "ran"
        evil = pickle.dumps(CreatesMarker(str(marker)))
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.connect(server.name)
            sock.sendall(len(evil).to_bytes(4, "little") + evil + bytes(64))
            sock.settimeout(10)
            assert len(sock.recv(auth.NONCE_SIZE)) == auth.NONCE_SIZE  # the challenge, then nothing
            assert _dropped(sock)
        assert not marker.exists() and calls == ["a"]
    finally:
        server.close()
    with pytest.raises(ConnectionRefusedError):
        AllocClient(f"auth-test-{os.getpid()}")


def test_a_token_file_is_readable_by_its_user_only(tmp_path):
    path = tmp_path / "dir" / "token"
    auth.write_token_file(str(path), "abc")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert auth.read_token_file(str(path)) == "abc"
    path.write_text("\n")
    with pytest.raises(auth.AuthConfigError, match="empty"):
        auth.read_token_file(str(path))
    with pytest.raises(auth.AuthConfigError, match="cannot read"):
        auth.read_token_file(str(tmp_path / "missing"))


def test_the_token_comes_from_the_environment_first(tmp_path, monkeypatch):
    for name in auth.TOKEN_ENV + auth.TOKEN_PATH_ENV:
        monkeypatch.delenv(name, raising=False)
    assert auth.token_from_environment() is None
    path = tmp_path / "token"
    path.write_text("from-file\n")
    monkeypatch.setenv("RAY_AUTH_TOKEN_PATH", str(path))
    assert auth.token_from_environment() == "from-file"
    monkeypatch.setenv("BABYRAY_AUTH_TOKEN", "from-env")
    assert auth.token_from_environment() == "from-env"


def test_init_without_authentication_only_by_asking_and_a_bad_mode_is_named(tmp_path):
    with pytest.raises(ValueError, match="auth_mode must be 'token' or 'disabled'"):
        ray.init(num_cpus=1, temp_dir=str(tmp_path), auth_mode="off")
    ray.init(num_cpus=1, temp_dir=str(tmp_path), auth_mode="disabled")
    try:
        assert auth.current_token() is None
        assert ray.get(ray.put(41), timeout=30) == 41
    finally:
        ray.shutdown()
    ray.init(num_cpus=1, temp_dir=str(tmp_path))
    try:
        assert auth.current_token() is not None
    finally:
        ray.shutdown()


DRIVER = """
import sys, babyray as ray
ray.init(address=sys.argv[1])
@ray.remote
def f(x):
    return x + 1
assert ray.get(f.remote(1), timeout=60) == 2
ray.shutdown()
print("DRIVER OK")
"""


REFUSED_DRIVER = """
import sys, babyray as ray
try:
    ray.init(address=sys.argv[1])
except ray.exceptions.AuthenticationError as exc:
    print("REFUSED", exc)
"""


def _env(tmp_path: Path) -> dict:
    """The environment of a cluster's commands and drivers, without any authentication setting."""
    return {k: v for k, v in cli_env(tmp_path).items() if "AUTH" not in k}


def test_start_head_makes_a_private_token_that_drivers_on_the_host_find(tmp_path):
    env = _env(tmp_path)
    port = free_port()
    address = f"127.0.0.1:{port}"
    driver = tmp_path / "driver.py"
    driver.write_text(DRIVER)
    try:
        head = start(env, port, 1)
        token_file = next(line for line in head.stdout.splitlines() if line.startswith("Auth token"))
        token_file = Path(token_file.split(": ", 1)[1].split(" ")[0])
        assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
        printed = cli(env, "get-auth-token")
        assert printed.returncode == 0 and printed.stdout.strip() == token_file.read_text().strip()
        assert len(printed.stdout.strip()) == 64

        run_driver(driver, address, env=env, expect="DRIVER OK")
        elsewhere = dict(env, BABYRAY_STATE_DIR=str(tmp_path / "another-host"))
        run = run_driver(driver, address, env=elsewhere)
        assert run.returncode != 0 and "no auth token for the cluster" in run.stderr, run.stdout + run.stderr
        # A token the head refuses fails at once, not when the lookup gives up after 30 s.
        refused_driver = tmp_path / "refused_driver.py"
        refused_driver.write_text(REFUSED_DRIVER)
        run = run_driver(refused_driver, address, env=dict(elsewhere, BABYRAY_AUTH_TOKEN="0" * 64))
        assert run.returncode == 0, run.stdout + run.stderr
        assert f"REFUSED the babyray head at {address} refused this process's auth token" in run.stdout
        run = run_driver(refused_driver, address, env=dict(elsewhere, BABYRAY_AUTH_MODE="disabled"))
        assert run.returncode == 0 and "authentication is off here" in run.stdout, run.stdout + run.stderr
        wrong_file = tmp_path / "wrong_token"
        wrong_file.write_text("1" * 64)
        wrong_file.chmod(0o600)
        member = cli(env, *start_args(free_port(), 1, "--token-file", str(wrong_file), head=address))
        assert member.returncode != 0 and "refused this process's auth token" in member.stderr, (
            member.stdout + member.stderr
        )
        assert "no babyray head answered" not in member.stderr
    finally:
        stop = stop_all(env, tmp_path)  # the refused member left nothing running either
    assert "stopped head" in stop.stdout, stop.stdout + stop.stderr
    assert not token_file.exists()


def test_start_with_no_auth_says_it_is_unsafe_and_takes_unauthenticated_drivers(tmp_path):
    env = _env(tmp_path)
    port = free_port()
    driver = tmp_path / "driver.py"
    driver.write_text(DRIVER)
    try:
        head = start(env, port, 1, "--no-auth")
        assert "authentication is OFF" in head.stdout
        run_driver(
            driver, f"127.0.0.1:{port}", env=dict(env, BABYRAY_AUTH_MODE="disabled"), expect="DRIVER OK"
        )
    finally:
        stop = cli(env, "stop")
    assert stop.returncode == 0, stop.stdout + stop.stderr
