import json

import pytest
from pygls.exceptions import JsonRpcException

from conftest import INIT, SCHEMA, Daemon, frame, raw_session, run


def codes_of(messages):
    return [m["error"]["code"] for m in messages if "error" in m]


def test_unknown_method_is_32601_and_daemon_keeps_serving():
    async def body():
        d = await Daemon().start()
        with pytest.raises(JsonRpcException) as err:
            await d.request("no/such/method")
        assert err.value.code == -32601
        assert "no/such/method" in err.value.message
        assert (await d.request("ping")).pong
        assert await d.stop() == 0
    run(body())


@pytest.mark.parametrize("params, field", [
    ({"delayMs": "soon"}, "params.delayMs"),
    ({"delayMs": -1}, "params.delayMs"),
])
def test_invalid_params_name_the_field(params, field):
    async def body():
        d = await Daemon().start()
        with pytest.raises(JsonRpcException) as err:
            await d.request("ping", params)
        assert err.value.code == -32602
        assert field in err.value.message
        assert await d.stop() == 0
    run(body())


def test_missing_required_field_is_named():
    async def body():
        d = await Daemon().start()
        with pytest.raises(JsonRpcException) as err:
            await d.request("debug/stream", {})
        assert err.value.code == -32602 and "params.count" in err.value.message and "missing" in err.value.message
        assert await d.stop() == 0
    run(body())


def test_parse_error_invalid_request_and_batch_get_null_id():
    bodies = [
        b"{not json",
        b"\xff\xfe{}",
        b'[{"jsonrpc":"2.0","id":5,"method":"ping"}]',
        b"42",
        b'{"jsonrpc":"1.0","id":7,"method":"ping"}',
        b'{"jsonrpc":"2.0","id":{"x":1},"method":"ping"}',
    ]
    stream = INIT + b"".join(frame(b) for b in bodies) + frame(b'{"jsonrpc":"2.0","id":9,"method":"ping"}')
    messages, _ = raw_session(stream)
    errors = [m for m in messages if "error" in m]
    assert [e["error"]["code"] for e in errors] == [-32700, -32700, -32600, -32600, -32600, -32600]
    assert [e["id"] for e in errors] == [None, None, None, None, 7, None]
    assert "batch" in errors[2]["error"]["message"]
    assert messages[-1] == {"jsonrpc": "2.0", "id": 9, "result": {"pong": True}}


def test_oversize_message_is_skipped_and_answered_with_32600():
    big = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "ping", "params": {"echo": "x" * 5000}}).encode()
    stream = INIT + frame(big) + frame(b'{"jsonrpc":"2.0","id":2,"method":"ping"}')
    messages, _ = raw_session(stream, "--max-message-bytes", "2048")
    assert messages[1]["id"] is None and messages[1]["error"]["code"] == -32600
    assert "2048" in messages[1]["error"]["message"]
    assert messages[2]["id"] == 2 and messages[2]["result"]["pong"] is True


def test_hostile_content_length_does_not_allocate():
    stream = INIT + b"Content-Length: 99999999999999999\r\n\r\n" + b"x" * 100
    messages, code = raw_session(stream, timeout=20)
    assert codes_of(messages) == [-32600]
    assert code == 1


def test_bad_headers_are_parse_errors_and_stream_resynchronises():
    stream = (INIT + b"Content-Type: application/json\r\n\r\n"
              + b"Content-Length: ten\r\n\r\n"
              + b"no colon here\r\n\r\n"
              + frame(b'{"jsonrpc":"2.0","id":3,"method":"ping"}'))
    messages, _ = raw_session(stream)
    assert codes_of(messages) == [-32700, -32700, -32700]
    assert messages[-1]["id"] == 3 and "result" in messages[-1]


def test_every_error_code_is_documented():
    # The Swift source of the codes and the spec list the same set.
    import pathlib, re
    source = (pathlib.Path(__file__).resolve().parents[2] / "Sources/VLMWire/RPCError.swift").read_text()
    swift_codes = {int(c) for c in re.findall(r"static let \w+ = (-\d+)", source)}
    assert swift_codes == {int(c) for c in SCHEMA["errorCodes"]}
    assert swift_codes == set(SCHEMA["$defs"]["Error"]["properties"]["code"]["enum"])


def test_every_method_name_is_in_the_spec():
    import pathlib, re
    # Notification names are in Methods.swift, each request's name in its type beside its params.
    wire = pathlib.Path(__file__).resolve().parents[2] / "Sources/VLMWire"
    names = set(re.findall(r'static let \w+ = "([^"]+)"', (wire / "Methods.swift").read_text()))
    for path in sorted(wire.glob("*.swift")):
        names |= set(re.findall(r'static let method = "([^"]+)"', path.read_text()))
    documented = set(SCHEMA["methods"]) | set(SCHEMA["notifications"])
    assert names <= documented, names - documented
    assert documented <= names
    version = (pathlib.Path(__file__).resolve().parents[2] / "Sources/VLMWire/Version.swift").read_text()
    assert f'"{SCHEMA["protocolVersion"]}"' in version
