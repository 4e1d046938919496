"""vlmd on a Unix socket (`vlmd --socket PATH`): several clients at once, each with its own lifecycle
and requests, sharing the models; the socket's permissions; one daemon per socket. Clients are
pygls connected with asyncio's Unix-socket streams; sockets live in pytest's temp dirs."""

import asyncio
import logging
import os
import socket
import stat
import subprocess
import time

import pytest
from pygls.client import run_async

from conftest import INIT, Daemon, frame, read_messages, run, vlmd_path

CLIP = "/work/shared/models/cifar-clip-rn64"


class SocketClient(Daemon):
    """One client connection to a vlmd listening on a Unix socket (pygls over asyncio streams)."""

    def __init__(self, path):
        super().__init__()
        self.path = path

    async def start(self, initialize=True, **init_params):
        reader, self.writer = await asyncio.open_unix_connection(self.path)
        self.client.protocol.set_writer(self.writer)
        self.closed = asyncio.create_task(run_async(
            stop_event=self.client._stop_event, reader=reader, protocol=self.client.protocol,
            logger=logging.getLogger("socket-test"), error_handler=self.client.report_server_error))
        if initialize:
            params = {"processId": os.getpid(), "clientInfo": {"name": "pytest"}, "capabilities": {}, **init_params}
            self.init_result = await self.request("initialize", params)
            self.notify("initialized")
        return self

    def disconnect(self):
        self.writer.close()

    async def stop(self):
        """shutdown + exit: the daemon closes this connection (and only it)."""
        assert await self.request("shutdown", None) is None
        self.notify("exit")
        await asyncio.wait_for(self.closed, 10)


def start_daemon(path, *args, log=None):
    proc = subprocess.Popen([vlmd_path(), "--socket", str(path), "--log-level", "info", *args],
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=log or subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        probe = socket.socket(socket.AF_UNIX)
        try:
            probe.connect(str(path))
            return proc
        except OSError:
            assert proc.poll() is None, f"vlmd exited with {proc.returncode} before listening"
            time.sleep(0.02)
        finally:
            probe.close()
    proc.kill()
    raise AssertionError("vlmd did not listen in time")


@pytest.fixture
def sock(tmp_path):
    """A vlmd on a socket in a fresh private directory; stopped (SIGTERM) at the end."""
    path = tmp_path / "run" / "vlmd.sock"
    log = open(tmp_path / "vlmd.log", "wb")
    proc = start_daemon(path, log=log)
    yield path
    if proc.poll() is None:
        proc.terminate()
        assert proc.wait(30) == 0
    log.close()


def test_directory_is_private_and_socket_owner_only(sock):
    assert stat.S_IMODE(os.stat(sock.parent).st_mode) == 0o700
    assert stat.S_ISSOCK(os.lstat(sock).st_mode)
    assert stat.S_IMODE(os.lstat(sock).st_mode) == 0o600


def test_second_daemon_refused_over_a_live_socket(sock):
    proc = subprocess.run([vlmd_path(), "--socket", str(sock)], capture_output=True, timeout=30)
    assert proc.returncode == 3
    assert b"already listening" in proc.stderr
    # The first one is untouched and still answers.
    async def ping():
        client = await SocketClient(sock).start()
        assert (await client.request("ping", {})).pong
        await client.stop()
    run(ping())


def test_stale_socket_is_replaced(tmp_path):
    directory = tmp_path / "run"
    directory.mkdir(mode=0o700)
    path = directory / "vlmd.sock"
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(str(path))  # bound, never listening, then closed: what a killed daemon leaves
    stale.close()
    assert path.exists()
    proc = start_daemon(path)
    try:
        async def initialize():
            client = await SocketClient(path).start()
            assert client.init_result.serverInfo.name == "vlmd"
            await client.stop()
        run(initialize())
    finally:
        proc.terminate()
        assert proc.wait(30) == 0
    assert not path.exists(), "the socket file is removed when the daemon stops"


def test_directory_open_to_others_is_refused(tmp_path):
    directory = tmp_path / "open"
    directory.mkdir()
    directory.chmod(0o755)
    proc = subprocess.run([vlmd_path(), "--socket", str(directory / "vlmd.sock")], capture_output=True, timeout=30)
    assert proc.returncode == 4
    assert b"open to other users" in proc.stderr
    assert not (directory / "vlmd.sock").exists()


def test_a_file_that_is_not_a_socket_is_left_alone(tmp_path):
    directory = tmp_path / "run"
    directory.mkdir(mode=0o700)
    (directory / "vlmd.sock").write_text("not mine to delete")
    proc = subprocess.run([vlmd_path(), "--socket", str(directory / "vlmd.sock")], capture_output=True, timeout=30)
    assert proc.returncode == 4
    assert (directory / "vlmd.sock").read_text() == "not mine to delete"


def test_concurrent_clients_have_their_own_lifecycle_and_share_models(sock):
    async def scenario():
        a, b, c = [await SocketClient(sock).start() for _ in range(3)]
        # Each connection runs its own streams at the same time, with the same request ids.
        results = await asyncio.gather(*[
            client.request("debug/stream", {"count": 20, "intervalMs": 5, "partialResultToken": "p"}, msg_id=7)
            for client in (a, b, c)])
        assert [r.count for r in results] == [20, 20, 20]
        for client in (a, b, c):
            partials = [m["params"]["value"]["index"] for m in client.checker.received
                        if m.get("method") == "$/progress" and m["params"]["token"] == "p"]
            assert partials == list(range(20))
        # A model loaded by one client is there for the others, and loading it again is a no-op.
        first = await a.request("models/load", {"kind": "clip", "path": CLIP})
        assert not hasattr(first, "alreadyLoaded")
        again = await b.request("models/load", {"kind": "clip", "path": CLIP})
        assert again.alreadyLoaded is True and again.id == first.id
        status = await c.request("daemon/status", {})
        assert status.modelLoads == 1 and status.connections == 3
        assert [m.id for m in status.models] == [first.id]
        # `exit` closes only that connection; the others go on.
        await a.stop()
        assert (await b.request("ping", {})).pong
        status = await c.request("daemon/status", {})
        assert status.connections == 2
        await b.stop()
        await c.stop()
    run(scenario())


def test_disconnect_mid_request_cancels_only_that_clients_requests(sock):
    async def scenario():
        leaver, stayer, watcher = [await SocketClient(sock).start() for _ in range(3)]
        leaving = asyncio.ensure_future(leaver.request("debug/stream", {"count": 100000, "intervalMs": 10}, msg_id="long"))
        staying = asyncio.ensure_future(stayer.request(
            "debug/stream", {"count": 300, "intervalMs": 10, "partialResultToken": "s"}, msg_id="long"))
        for _ in range(200):
            status = await watcher.request("daemon/status", {})
            if sum(r.method == "debug/stream" for r in status.inFlight) == 2:
                break
            await asyncio.sleep(0.01)
        else:
            raise AssertionError(f"both streams never ran at once: {status.inFlight}")
        leaver.disconnect()
        leaving.cancel()
        # The leaver's request is cancelled by the daemon (gone from the daemon-wide in-flight list)...
        for _ in range(500):
            status = await watcher.request("daemon/status", {})
            if status.connections == 2:
                break
            await asyncio.sleep(0.01)
        assert status.connections == 2
        # ...while the other client's identical request runs to its end, every partial result delivered.
        result = await asyncio.wait_for(staying, 30)
        assert result.count == 300
        partials = [m["params"]["value"]["index"] for m in stayer.checker.received
                    if m.get("method") == "$/progress" and m["params"]["token"] == "s"]
        assert partials == list(range(300))
        status = await watcher.request("daemon/status", {})
        assert [r for r in status.inFlight if r.method == "debug/stream"] == []
        await stayer.stop()
        await watcher.stop()
    run(scenario())
    log = (sock.parent.parent / "vlmd.log").read_text()
    assert "end of input: cancelling 1 request(s) in flight" in log


def test_daemon_stop_answers_in_flight_requests_and_removes_the_socket(tmp_path):
    path = tmp_path / "run" / "vlmd.sock"
    proc = start_daemon(path)

    async def scenario():
        busy = await SocketClient(path).start()
        stopper = await SocketClient(path).start()
        running = asyncio.ensure_future(busy.request("debug/stream", {"count": 100000, "intervalMs": 10}))
        # Stopped once the stream runs (a fixed pause could end before a loaded machine started it).
        while not any(r.method == "debug/stream" for r in (await stopper.request("daemon/status", {})).inFlight):
            await asyncio.sleep(0.01)
        assert await stopper.request("daemon/stop", None) is None
        with pytest.raises(Exception) as cancelled:
            await asyncio.wait_for(running, 30)
        assert "-32800" in str(cancelled.value) or "cancel" in str(cancelled.value).lower()
    run(scenario())
    assert proc.wait(30) == 0
    assert not path.exists()


def test_stdio_stays_the_default_transport():
    body = b'{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"capabilities":{}}}'
    proc = subprocess.run([vlmd_path(), "--log-level", "off"], input=frame(body), capture_output=True, timeout=30)
    assert read_messages(proc.stdout)[0]["result"]["serverInfo"]["name"] == "vlmd"


def test_daemon_stop_on_stdio_replies_then_exits_0():
    stop = frame(b'{"jsonrpc":"2.0","id":"stop","method":"daemon/stop"}')
    proc = subprocess.Popen([vlmd_path(), "--log-level", "off"], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    proc.stdin.write(INIT + stop)
    proc.stdin.flush()  # stdin stays open: the daemon ends because of daemon/stop, not end of input
    assert proc.wait(30) == 0
    messages = read_messages(proc.stdout.read())
    proc.stdin.close()
    assert [m for m in messages if m.get("id") == "stop"] == [{"jsonrpc": "2.0", "id": "stop", "result": None}]
