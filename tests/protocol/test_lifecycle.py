import json

import pytest
from pygls.exceptions import JsonRpcException

from conftest import INIT, SCHEMA, Daemon, frame, raw_session, run


def test_initialize_advertises_server_limits_methods_and_models():
    async def body():
        d = await Daemon("--max-message-bytes", "123456").start()
        experimental = d.init_result.capabilities.experimental
        assert d.init_result.serverInfo.name == "vlmd"
        assert experimental.limits.maxMessageBytes == 123456
        assert "ping" in experimental.methods and "daemon/status" in experimental.methods
        assert set(experimental.modelKinds) == {"clip", "gguf", "mmproj"}
        # Every advertised method is in the spec.
        for method in experimental.methods:
            assert method in SCHEMA["methods"] or method in SCHEMA["notifications"], method
        assert await d.stop() == 0
    run(body())


def test_request_before_initialize_is_refused_with_32002():
    async def body():
        d = await Daemon().start(initialize=False)
        with pytest.raises(JsonRpcException) as err:
            await d.request("ping")
        assert err.value.code == -32002
        await d.request("initialize", {"capabilities": {}})
        assert (await d.request("ping")).pong is True
        assert await d.stop() == 0
    run(body())


def test_second_initialize_and_requests_after_shutdown_are_invalid():
    async def body():
        d = await Daemon().start()
        with pytest.raises(JsonRpcException) as err:
            await d.request("initialize", {"capabilities": {}})
        assert err.value.code == -32600
        await d.request("shutdown", None)
        with pytest.raises(JsonRpcException) as err:
            await d.request("ping")
        assert err.value.code == -32600
        d.notify("exit")
        assert await d.client._server.wait() == 0
    run(body())


def test_exit_without_shutdown_exits_1():
    async def body():
        d = await Daemon().start()
        d.notify("exit")
        assert await d.client._server.wait() == 1
    run(body())


def test_end_of_input_mid_request_cancels_and_exits_cleanly():
    stream = INIT + frame(json.dumps({"jsonrpc": "2.0", "id": 1, "method": "ping", "params": {"delayMs": 600000}}).encode())
    messages, code = raw_session(stream, timeout=20)
    replies = {m["id"]: m for m in messages if "id" in m}
    assert replies[1]["error"]["code"] == -32800
    assert code == 1  # no shutdown was sent


def test_end_of_input_after_shutdown_exits_0():
    stream = INIT + frame(b'{"jsonrpc":"2.0","id":1,"method":"shutdown"}')
    messages, code = raw_session(stream)
    assert [m["id"] for m in messages] == ["init", 1]
    assert code == 0


def test_status_reports_uptime_and_requests_in_flight():
    async def body():
        import asyncio
        d = await Daemon().start()
        # The ping waits until it is cancelled, so once the daemon has it, it stays in flight however slow the
        # machine: ask until it shows (it was sent first, so a status without it was read before it).
        slow = asyncio.ensure_future(d.request("ping", {"delayMs": 60_000}, msg_id="slow"))
        for _ in range(1000):
            status = await d.request("daemon/status")
            if any(r.method == "ping" for r in status.inFlight):
                break
            await asyncio.sleep(0.01)
        assert status.uptimeSeconds > 0
        methods = [r.method for r in status.inFlight]
        assert "ping" in methods and "daemon/status" in methods
        assert status.memory.budgetBytes > 0
        d.notify("$/cancelRequest", {"id": "slow"})
        with pytest.raises(JsonRpcException) as err:
            await slow
        assert err.value.code == -32800
        assert await d.stop() == 0
    run(body())


def test_log_messages_sent_when_client_asks():
    async def body():
        d = await Daemon().start(initializationOptions={"logLevel": "info"})
        await d.request("ping")
        logs = [m for m in d.checker.received if m.get("method") == "window/logMessage"]
        assert any("initialized by pytest" in m["params"]["message"] for m in logs)
        assert await d.stop() == 0
    run(body())


def test_set_trace_sends_log_trace_per_request():
    async def body():
        d = await Daemon().start()
        d.notify("$/setTrace", {"value": "messages"})
        await d.request("ping")
        traces = [m for m in d.checker.received if m.get("method") == "$/logTrace"]
        assert any("ping" in m["params"]["message"] for m in traces)
        assert await d.stop() == 0
    run(body())
