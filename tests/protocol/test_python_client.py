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
