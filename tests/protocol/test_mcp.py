"""`vlmd --mcp` driven by an independent MCP client: the `mcp` package's stdio client and
ClientSession (PyPI), plus raw lines for what a well-behaved client cannot send. Tool results are
checked against the same protocol/vlmd.schema.json definitions as the LSP-framed replies."""

import base64
import json
import subprocess

import anyio
import jsonschema
import pytest
from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client

from conftest import ROOT, SCHEMA, Daemon, run, validator, vlmd_path

SHARED = ROOT.parent / "shared"
CLIP = SHARED / "models" / "cifar-clip-rn64"
CHELSEA = SHARED / "data" / "images" / "chelsea.png"
CIFAR_LABELS = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def server():
    return StdioServerParameters(command=vlmd_path(), args=["--mcp", "--log-level", "warning"])


async def with_session(body):
    async with stdio_client(server()) as (read, write):
        async with ClientSession(read, write) as session:
            init = await session.initialize()
            return await body(session, init)


async def load_clip(session):
    loaded = await session.call_tool("load_model", {"kind": "clip", "path": str(CLIP)})
    assert not loaded.is_error, loaded.content
    return loaded


async def lsp_results(requests):
    """The same requests through the LSP-framed daemon (pygls): the raw result of each."""
    d = await Daemon().start()
    await d.request("models/load", {"kind": "clip", "path": str(CLIP)})
    results = []
    for method, params in requests:
        await d.request(method, params)
        results.append([m for m in d.checker.received if "result" in m][-1]["result"])
    await d.stop()
    return results


def test_initialize_negotiates_and_advertises_tools():
    async def body(session, init):
        assert init.server_info.name == "vlmd"
        assert init.protocol_version == "2025-11-25"  # the client's offer, which vlmd speaks
        assert init.capabilities.tools is not None
        assert "load_model" in init.instructions
        await session.send_ping()
    run(with_session(body))


def test_tools_list_schemas_are_the_protocol_schemas_params():
    async def body(session, _):
        tools = {tool.name: tool for tool in (await session.list_tools()).tools}
        assert {"list_models", "load_model", "encode_image", "classify", "generate_with_visual_selection"} <= set(tools)
        methods = {"encode_image": "encode-image", "classify": "classify", "load_model": "models/load",
                   "generate_with_visual_selection": "generate-with-visual-selection", "attribute": "attribute"}
        for name, tool in tools.items():
            jsonschema.Draft202012Validator.check_schema(tool.input_schema)
            jsonschema.Draft202012Validator.check_schema(tool.output_schema)
            assert tool.input_schema["type"] == "object" and tool.description
            assert "$ref" not in json.dumps(tool.input_schema)
            assert "workDoneToken" not in json.dumps(tool.input_schema)
            if name in methods:
                params = SCHEMA["$defs"][SCHEMA["methods"][methods[name]]["params"]["$ref"].split("/")[-1]]
                assert tool.input_schema["required"] == params["required"]
                assert set(tool.input_schema["properties"]) == set(params["properties"])
        # an argument the protocol schema refuses is refused by the tool's schema too
        bad = {"images": [], "labels": ["cat"]}
        assert not jsonschema.Draft202012Validator(tools["classify"].input_schema).is_valid(bad)
        assert not validator(SCHEMA["methods"]["classify"]["params"]).is_valid(bad)
    run(with_session(body))


def test_encode_image_and_classify_on_the_demo_clip_with_progress():
    encode = {"images": [{"path": str(CHELSEA)}]}
    classify = {"images": [{"path": str(CHELSEA)}], "labels": CIFAR_LABELS, "templates": "cifar"}

    async def body(session, _):
        loaded = await load_clip(session)
        assert loaded.structured_content["id"] == "cifar-clip-rn64"
        listed = await session.call_tool("list_models", {})
        assert [m["id"] for m in listed.structured_content["models"]] == ["cifar-clip-rn64"]

        updates = []

        async def on_progress(progress, total, message):
            updates.append((progress, total, message))

        encoded = await session.call_tool("encode_image", encode, progress_callback=on_progress)
        assert not encoded.is_error
        result = encoded.structured_content
        validator(SCHEMA["methods"]["encode-image"]["result"]).validate(result)
        embedding = result["images"][0]["embedding"]
        assert len(embedding) == 128 and abs(sum(x * x for x in embedding) - 1) < 1e-4
        summary, as_json = encoded.content[0].text, encoded.content[1].text
        assert "Encoded 1 image(s) with cifar-clip-rn64" in summary and result["images"][0]["imageId"] in summary
        assert json.loads(as_json) == result
        # work-done progress arrives as notifications/progress on the call's progressToken, increasing
        assert updates and [p for p, _, _ in updates] == sorted({p for p, _, _ in updates})
        assert any("Encoding 1 image(s)" in (m or "") for _, _, m in updates)

        classified = await session.call_tool("classify", classify)
        assert not classified.is_error
        result = classified.structured_content
        validator(SCHEMA["methods"]["classify"]["result"]).validate(result)
        top = result["results"][0]["top"][0]
        assert classified.content[0].text.startswith("Classified 1 image(s)")
        assert f"image 0: {top['label']} {top['prob']:.3f}" in classified.content[0].text
        return encoded.structured_content, result

    mcp_encoded, mcp_classified = run(with_session(body))
    # the same numbers as the LSP-framed protocol gives: one daemon behind both
    lsp_encoded, lsp_classified = run(lsp_results([("encode-image", encode), ("classify", classify)]))
    assert mcp_encoded["images"][0]["embedding"] == lsp_encoded["images"][0]["embedding"]
    assert mcp_encoded["images"][0]["imageId"] == lsp_encoded["images"][0]["imageId"]
    assert mcp_classified["results"][0]["probs"] == lsp_classified["results"][0]["probs"]
    assert mcp_classified["templates"] == lsp_classified["templates"] and len(mcp_classified["templates"]) == 18


def test_tool_failures_are_error_results_and_unknown_tools_protocol_errors():
    async def body(session, _):
        missing = await session.call_tool("encode_image", {"images": [{"path": str(CHELSEA)}]})
        assert missing.is_error and "-32001" in missing.content[0].text  # no CLIP loaded yet
        await load_clip(session)
        unreadable = await session.call_tool("encode_image", {"images": [{"path": "/nonexistent/x.png"}]})
        assert unreadable.is_error and "-32004" in unreadable.content[0].text and "/nonexistent/x.png" in unreadable.content[0].text
        invalid = await session.call_tool("classify", {"images": [{"path": str(CHELSEA)}], "labels": "cat"})
        assert invalid.is_error and "-32602" in invalid.content[0].text and "labels" in invalid.content[0].text
        with pytest.raises(Exception) as error:
            await session.call_tool("no_such_tool", {})
        assert "no_such_tool" in str(error.value)
        # the session survives all of it
        ok = await session.call_tool("encode_image", {"images": [{"path": str(CHELSEA)}]})
        assert not ok.is_error
    run(with_session(body))


def test_abandoned_call_is_cancelled_and_the_session_goes_on():
    async def body(session, _):
        await load_clip(session)
        started = anyio.Event()

        async def on_progress(progress, total, message):
            if progress >= 2:  # a report after the first image, not just the begin
                started.set()

        images = [{"path": str(CHELSEA)}] * 5000
        async with anyio.create_task_group() as group:
            async def long_call():
                await session.call_tool("encode_image", {"images": images, "batchSize": 1}, progress_callback=on_progress)
                pytest.fail("the abandoned call was answered")
            group.start_soon(long_call)
            await started.wait()
            group.cancel_scope.cancel()  # the client sends notifications/cancelled for it
        await session.send_ping()
        again = await session.call_tool("encode_image", {"images": [{"path": str(CHELSEA)}]})
        assert not again.is_error and again.structured_content["images"][0]["cached"] is True
    run(with_session(body))


def test_visual_reasoning_heatmaps_come_back_as_image_content():
    async def body(session, _):
        await load_clip(session)
        lm = await session.call_tool("load_model", {
            "kind": "gguf", "path": str(SHARED / "models" / "stories260K.gguf"), "contextLength": 1024})
        assert not lm.is_error, lm.content
        updates = []

        async def on_progress(progress, total, message):
            updates.append(message)

        answer = await session.call_tool("generate_with_visual_selection", {
            "image": {"path": str(CHELSEA)}, "question": "What animal is this?", "maxTokensPerStage": 8,
            "labels": ["cat", "dog", "frog"], "regionGrid": [1, 2], "maxSteps": 2, "seed": 1,
            "heatmapsInline": True}, progress_callback=on_progress)
        assert not answer.is_error, answer.content
        result = answer.structured_content
        validator(SCHEMA["methods"]["generate-with-visual-selection"]["result"]).validate(result)
        heatmaps = [step["attribution"]["heatmapPNG"] for step in result["steps"] if "heatmapPNG" in step.get("attribution", {})]
        assert heatmaps, "no inline heatmaps to check"
        images = [c for c in answer.content if c.type == "image"]
        assert [i.data for i in images] == heatmaps and all(i.mime_type == "image/png" for i in images)
        assert all(base64.b64decode(h).startswith(b"\x89PNG\r\n\x1a\n") for h in heatmaps)
        as_json = answer.content[1].text
        assert "heatmapPNG" in as_json and heatmaps[0] not in as_json  # the text carries a pointer, not the bytes
        assert answer.content[0].text.startswith("Answer: " + result["answer"])
        assert updates and any("Reasoning about the image" in (m or "") for m in updates)
    run(with_session(body))


# Raw lines: what a well-behaved client library cannot send.

def raw_mcp(lines, *args, timeout=60):
    """Writes lines to `vlmd --mcp` and closes its stdin; returns every reply and the exit code."""
    proc = subprocess.Popen([vlmd_path(), "--mcp", "--log-level", "off", *args], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    out, _ = proc.communicate(b"".join(lines), timeout=timeout)
    return [json.loads(line) for line in out.splitlines()], proc.returncode


def line(message) -> bytes:
    return json.dumps(message).encode() + b"\n"


def test_malformed_lines_get_json_rpc_errors_and_never_crash():
    initialize = {"jsonrpc": "2.0", "id": 1, "method": "initialize",
                  "params": {"protocolVersion": "1999-01-01", "capabilities": {}, "clientInfo": {"name": "raw"}}}
    messages, code = raw_mcp([
        line(initialize),
        b"{not json\n",
        b"\n",
        line([{"jsonrpc": "2.0", "id": 2, "method": "ping"}]),
        line({"jsonrpc": "2.0", "id": 3, "method": "resources/list"}),
        line({"jsonrpc": "2.0", "id": 4, "method": "tools/call", "params": {"arguments": {}}}),
        line({"jsonrpc": "2.0", "id": 5, "method": "tools/call", "params": {"name": "classify", "arguments": [1]}}),
        b'{"jsonrpc":"2.0","id":6,"method":"ping"}\r\n',
        line({"jsonrpc": "2.0", "id": 7, "method": "ping", "params": {"pad": "x" * 2000}}),
        line({"jsonrpc": "2.0", "id": 8, "method": "ping"}),
    ], "--max-message-bytes", "1024")
    by_id = {m.get("id"): m for m in messages}
    assert by_id[1]["result"]["protocolVersion"] == "2025-11-25"  # unknown offer: the newest is proposed
    errors = [m["error"]["code"] for m in messages if m.get("id") is None]
    assert errors == [-32700, -32600, -32600]  # the junk line, the batch, the line over 1024 bytes
    assert by_id[3]["error"]["code"] == -32601
    assert by_id[4]["error"]["code"] == -32602 and "name" in by_id[4]["error"]["message"]
    assert by_id[5]["error"]["code"] == -32602 and "arguments" in by_id[5]["error"]["message"]
    assert by_id[6]["result"] == {} and by_id[8]["result"] == {} and 7 not in by_id
    assert code == 0


def test_cancelled_call_gets_no_reply_and_the_daemon_stops_it():
    proc = subprocess.Popen([vlmd_path(), "--mcp", "--log-level", "info"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)

    def send(message):
        proc.stdin.write(line(message))
        proc.stdin.flush()

    def read_until(predicate, stream):
        seen = []
        while True:
            text = stream.readline()
            assert text, f"stream ended; saw {seen!r}"
            seen.append(text)
            if predicate(text):
                return seen

    send({"jsonrpc": "2.0", "id": 1, "method": "initialize",
          "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "raw"}}})
    send({"jsonrpc": "2.0", "method": "notifications/initialized"})
    send({"jsonrpc": "2.0", "id": 2, "method": "tools/call",
          "params": {"name": "load_model", "arguments": {"kind": "clip", "path": str(CLIP)}}})
    read_until(lambda text: json.loads(text).get("id") == 2, proc.stdout)
    # 20,000 images: minutes of work, so only a cancellation can end it while stdin stays open
    send({"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": {
        "name": "encode_image", "_meta": {"progressToken": "p3"},
        "arguments": {"images": [{"path": str(CHELSEA)}] * 20000, "batchSize": 1}}})
    before = read_until(lambda text: json.loads(text).get("method") == "notifications/progress", proc.stdout)
    send({"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": 3, "reason": "test"}})
    # the daemon answers its request -32800 (the adapter logs it and sends nothing)
    log = read_until(lambda text: b"cancelled call 3" in text, proc.stderr)
    assert b"ended with error -32800" in log[-1]
    send({"jsonrpc": "2.0", "id": 4, "method": "ping"})
    after = read_until(lambda text: json.loads(text).get("id") == 4, proc.stdout)
    proc.stdin.close()
    rest = proc.stdout.read().splitlines()
    assert proc.wait(timeout=60) == 0
    ids = [json.loads(text).get("id") for text in before + after + rest]
    assert 3 not in ids  # no reply, ever, for the cancelled call
    assert json.loads(after[-1])["result"] == {}
