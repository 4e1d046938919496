"""The Python client in clients/python against the real daemon."""

import asyncio
import sys

import pytest

from conftest import ROOT, run, vlmd_path

sys.path.insert(0, str(ROOT / "clients" / "python"))
from vlmd_client import REQUEST_CANCELLED, VlmdClient, VlmdError  # noqa: E402


def test_request_stream_and_close():
    async def body():
        vlm = await VlmdClient.start([vlmd_path(), "--log-level", "off"])
        assert vlm.server_info["serverInfo"]["name"] == "vlmd"
        assert await vlm.request("ping", {"echo": [1, "two"]}) == {"pong": True, "echo": [1, "two"]}
        progress = []
        stream = vlm.stream("debug/stream", {"count": 4}, on_progress=progress.append)
        assert [p async for p in stream] == [{"index": i} for i in range(4)]
        assert await stream.result == {"count": 4}
        assert progress[0]["kind"] == "begin" and progress[-1]["kind"] == "end"
        assert await vlm.close() == 0
    run(body())


def test_errors_raise_vlmd_error():
    async def body():
        vlm = await VlmdClient.start([vlmd_path(), "--log-level", "off"])
        with pytest.raises(VlmdError) as err:
            await vlm.request("ping", {"delayMs": "x"})
        assert err.value.code == -32602
        await vlm.close()
    run(body())


def test_cancelling_the_awaiting_task_cancels_the_request():
    async def body():
        vlm = await VlmdClient.start([vlmd_path(), "--log-level", "off"])
        task = asyncio.ensure_future(vlm.request("ping", {"delayMs": 60000}))
        await asyncio.sleep(0.1)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        status = await vlm.request("daemon/status")
        assert all(r["method"] != "ping" for r in status["inFlight"])
        stream = vlm.stream("debug/stream", {"count": 100000, "intervalMs": 1})
        async for partial in stream:
            if partial["index"] == 3:
                await stream.cancel()
        with pytest.raises(VlmdError) as err:
            await stream.result
        assert err.value.code == REQUEST_CANCELLED
        await vlm.close()
    run(body())


# --- the shared daemon on a Unix socket (`vlm daemon start`, `vlmd --socket PATH`) ---

from test_socket import CLIP, sock  # noqa: E402,F401  (the fixture: a vlmd on a socket in a temp dir)
from vlmd_client import default_socket_path  # noqa: E402


def test_connect_shares_models_across_connections_and_close_ends_only_the_connection(sock):
    async def body():
        first = await VlmdClient.connect(str(sock))
        assert first.shared and first.server_info["serverInfo"]["name"] == "vlmd"
        loaded = await first.request("models/load", {"kind": "clip", "path": CLIP})
        assert await first.close() is None
        # The model outlived the connection that loaded it: the next script finds it resident.
        second = await VlmdClient.connect(str(sock))
        again = await second.request("models/load", {"kind": "clip", "path": CLIP})
        assert again["alreadyLoaded"] is True and again["id"] == loaded["id"]
        status = await second.request("daemon/status")
        assert status["connections"] == 1 and status["modelLoads"] == 1
        await second.close()
    run(body())


def test_open_uses_the_shared_daemon_when_one_listens_and_starts_one_otherwise(sock, tmp_path):
    async def body():
        shared = await VlmdClient.open([vlmd_path(), "--log-level", "off"], socket_path=str(sock))
        assert shared.shared
        await shared.close()
        private = await VlmdClient.open([vlmd_path(), "--log-level", "off"], stderr=asyncio.subprocess.DEVNULL,
                                        socket_path=str(tmp_path / "nobody" / "vlmd.sock"))
        assert not private.shared and private.process.returncode is None
        assert await private.close() == 0
    run(body())


def test_connect_without_a_daemon_raises_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError):
        run(VlmdClient.connect(str(tmp_path / "vlmd.sock")))


@pytest.mark.parametrize("environment", [
    {"VLMD_SOCKET": "/tmp/named/v.sock", "XDG_RUNTIME_DIR": "/run/user/7"},
    {"XDG_RUNTIME_DIR": "/run/user/7"},
    {"XDG_CACHE_HOME": "/var/cache/me"},
    {},
])
def test_default_socket_path_is_the_one_vlm_uses(environment, tmp_path):
    """The Python rule and the Swift rule agree: `vlm daemon status` names the path it looked at."""
    import os
    import subprocess
    env = {"PATH": os.environ.get("PATH", ""), "HOME": str(tmp_path), **environment}
    vlm = str(__import__("pathlib").Path(vlmd_path()).with_name("vlm"))
    out = subprocess.run([vlm, "daemon", "status"], env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 3, out.stderr
    assert out.stderr.strip() == f"no vlmd is running on {default_socket_path(env)}"
