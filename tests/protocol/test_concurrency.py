import asyncio

import pytest
from pygls.exceptions import JsonRpcException

from conftest import Daemon, run


def test_cancel_slow_request_gets_exactly_one_32800_reply():
    async def body():
        d = await Daemon().start()
        slow = asyncio.ensure_future(d.request("ping", {"delayMs": 60000}, msg_id=100))
        await asyncio.sleep(0.05)
        d.notify("$/cancelRequest", {"id": 100})
        with pytest.raises(JsonRpcException) as err:
            await asyncio.wait_for(slow, 5)
        assert err.value.code == -32800
        d.notify("$/cancelRequest", {"id": 100})  # already answered: ignored
        assert (await d.request("ping")).pong
        replies = [m for m in d.checker.received if m.get("id") == 100 and "method" not in m]
        assert len(replies) == 1
        assert await d.stop() == 0
    run(body())


def test_short_request_is_answered_while_a_long_one_runs():
    """The long request streams until it is cancelled, so a ping answered before that was answered while it
    ran, however slow a loaded machine is (no window of time to win)."""
    async def body():
        d = await Daemon().start()
        long = asyncio.ensure_future(d.request("debug/stream", {"count": 1_000_000, "intervalMs": 25, "partialResultToken": "p"},
                                               msg_id="long"))
        while not d.progress("p"):
            await asyncio.sleep(0.01)
        assert (await d.request("ping")).pong
        assert not long.done()
        d.notify("$/cancelRequest", {"id": "long"})
        with pytest.raises(JsonRpcException) as err:
            await long
        assert err.value.code == -32800
        assert await d.stop() == 0
    run(body())


def test_streaming_partials_and_progress_arrive_in_order_before_the_reply():
    async def body():
        d = await Daemon().start()
        result = await d.request("debug/stream", {"count": 30, "intervalMs": 10, "workDoneToken": "w", "partialResultToken": "p"})
        assert result.count == 30
        assert [v["index"] for v in d.progress("p")] == list(range(30))
        kinds = [v["kind"] for v in d.progress("w")]
        assert kinds[0] == "begin" and kinds[-1] == "end" and set(kinds[1:-1]) <= {"report"}
        assert d.progress("w")[0]["cancellable"] is True
        # The reply comes after every notification of its request.
        order = [i for i, m in enumerate(d.checker.received) if m.get("params", {}).get("token") in ("p", "w")]
        reply = next(i for i, m in enumerate(d.checker.received) if m.get("result", {}) == {"count": 30})
        assert max(order) < reply
        assert await d.stop() == 0
    run(body())


def test_progress_is_throttled_for_fast_loops():
    async def body():
        d = await Daemon().start()
        await d.request("debug/stream", {"count": 20000, "workDoneToken": "w"})
        reports = [v for v in d.progress("w") if v["kind"] == "report"]
        assert len(reports) < 200  # 20,000 steps, but at most one report per 50 ms
        assert await d.stop() == 0
    run(body())


def test_cancel_streaming_request_mid_stream():
    async def body():
        d = await Daemon().start()
        task = asyncio.ensure_future(d.request("debug/stream", {"count": 1000, "intervalMs": 5, "partialResultToken": "p"}, msg_id="s"))
        while len(d.progress("p")) < 5:
            await asyncio.sleep(0.01)
        d.notify("$/cancelRequest", {"id": "s"})
        with pytest.raises(JsonRpcException) as err:
            await task
        assert err.value.code == -32800
        assert len(d.progress("p")) < 1000
        assert await d.stop() == 0
    run(body())


def test_1000_pipelined_requests_no_lost_or_duplicated_reply():
    async def body():
        d = await Daemon().start()
        futures = [d.request("ping", {"echo": i}, msg_id=10_000 + i) for i in range(1000)]
        results = await asyncio.gather(*futures)
        assert [r.echo for r in results] == list(range(1000))
        ids = [m["id"] for m in d.checker.received if "id" in m and isinstance(m["id"], int) and m["id"] >= 10_000]
        assert sorted(ids) == list(range(10_000, 11_000))
        assert await d.stop() == 0
    run(body())
