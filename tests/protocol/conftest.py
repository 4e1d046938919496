"""Protocol tests: drive the real vlmd binary through an independent JSON-RPC client (pygls),
and check that everything it sends validates against protocol/vlmd.schema.json."""

import asyncio
import json
import os
import pathlib
import subprocess
import tempfile

import jsonschema
import pytest
from pygls.client import JsonRPCClient
from pygls.protocol import JsonRPCProtocol

ROOT = pathlib.Path(__file__).resolve().parents[2]
SCHEMA = json.loads((ROOT / "protocol" / "vlmd.schema.json").read_text())

# `vlm` uses a shared daemon on the default socket when one is up: the suite must never meet the
# user's. Its default socket is moved into an empty temp dir; tests that want one name it.
os.environ.pop("VLMD_SOCKET", None)
os.environ["XDG_RUNTIME_DIR"] = tempfile.mkdtemp(prefix="vlmd-test-run-")


def vlmd_path() -> str:
    path = os.environ.get("VLMD") or str(ROOT / ".build" / "debug" / "vlmd")
    if not os.path.exists(path):
        pytest.fail(f"vlmd binary not found at {path}: run `swift build` first or set VLMD")
    return path


def validator(ref: dict) -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator({**ref, "$defs": SCHEMA["$defs"]})


class SchemaChecker:
    """Validates every message the server sends, using what the client sent to know each reply's method."""

    def __init__(self):
        self.sent_methods = {}      # request id -> method
        self.work_tokens = set()
        self.partial_tokens = {}    # token -> method
        self.received = []
        self.message = validator({"$ref": "#/$defs/Message"})
        self.progress = validator({"$ref": "#/$defs/WorkDoneProgress"})

    def note_request(self, msg_id, method, params):
        self.sent_methods[msg_id] = method
        if isinstance(params, dict):
            if "workDoneToken" in params:
                self.work_tokens.add(params["workDoneToken"])
            if "partialResultToken" in params:
                self.partial_tokens[params["partialResultToken"]] = method

    def check(self, message: dict):
        self.received.append(message)
        self.message.validate(message)
        if "method" in message:
            spec = SCHEMA["notifications"].get(message["method"])
            assert spec and spec["direction"] == "server-to-client", f"undocumented notification {message['method']}"
            validator(spec["params"]).validate(message.get("params"))
            if message["method"] == "$/progress":
                token, value = message["params"]["token"], message["params"]["value"]
                if token in self.work_tokens:
                    self.progress.validate(value)
                elif token in self.partial_tokens:
                    partial = SCHEMA["methods"][self.partial_tokens[token]].get("partialResult")
                    assert partial, f"{self.partial_tokens[token]} streams partial results but documents none"
                    validator(partial).validate(value)
                else:
                    raise AssertionError(f"$/progress on a token the client never gave: {token}")
        elif "result" in message:
            method = self.sent_methods.get(message["id"])
            assert method in SCHEMA["methods"], f"reply to an undocumented method {method}"
            validator(SCHEMA["methods"][method]["result"]).validate(message["result"])


class RecordingProtocol(JsonRPCProtocol):
    checker: SchemaChecker

    def structure_message(self, data):
        # Called as json's object_hook, innermost objects first; only whole messages carry "jsonrpc".
        if "jsonrpc" in data:
            self.checker.check(json.loads(json.dumps(data)))  # a copy: pygls rewrites params in place
        return super().structure_message(data)

    def send_request(self, method, params=None, callback=None, msg_id=None):
        msg_id = msg_id if msg_id is not None else self._next_id()
        self.checker.note_request(msg_id, method, params)
        return super().send_request(method, params, callback, msg_id)

    def _next_id(self):
        self._counter = getattr(self, "_counter", 0) + 1
        return self._counter


class Daemon:
    """A vlmd subprocess driven by pygls' JsonRPCClient."""

    def __init__(self, *args: str):
        self.args = args
        self.client = JsonRPCClient(protocol_cls=RecordingProtocol)
        self.checker = SchemaChecker()
        self.client.protocol.checker = self.checker
        for method in ("$/progress", "window/logMessage", "$/logTrace"):
            self.client.feature(method)(lambda *_: None)

    async def start(self, initialize=True, **init_params):
        await self.client.start_io(vlmd_path(), *self.args)
        if initialize:
            params = {"processId": os.getpid(), "clientInfo": {"name": "pytest"}, "capabilities": {}, **init_params}
            self.init_result = await self.request("initialize", params)
            self.client.protocol.notify("initialized", {})
        return self

    async def request(self, method, params=None, msg_id=None):
        return await self.client.protocol.send_request_async(method, params if params is not None else {}, msg_id=msg_id)

    def notify(self, method, params=None):
        self.client.protocol.notify(method, params if params is not None else {})

    async def stop(self) -> int:
        """shutdown + exit; returns the exit code."""
        try:
            await asyncio.wait_for(self.request("shutdown", None), 10)
            self.notify("exit")
        except Exception:
            pass
        return await asyncio.wait_for(self.client._server.wait(), 10)

    def progress(self, token):
        return [m["params"]["value"] for m in self.checker.received
                if m.get("method") == "$/progress" and m["params"]["token"] == token]


def run(coro, timeout=120):
    return asyncio.run(asyncio.wait_for(coro, timeout))


# Raw-pipe helpers for what a well-behaved client library cannot send (bad headers, junk bodies).

def frame(body: bytes) -> bytes:
    return b"Content-Length: %d\r\n\r\n" % len(body) + body


def read_messages(stdout: bytes) -> list:
    messages, rest = [], stdout
    while rest:
        header, sep, rest = rest.partition(b"\r\n\r\n")
        assert sep, f"trailing bytes without a header: {header[:80]!r}"
        length = int(header.split(b":")[1])
        messages.append(json.loads(rest[:length]))
        rest = rest[length:]
    return messages


def raw_session(stream: bytes, *args: str, timeout=60):
    """Runs vlmd on a whole input stream (ending in EOF); returns (messages, exit code)."""
    proc = subprocess.run([vlmd_path(), "--log-level", "off", *args], input=stream, capture_output=True, timeout=timeout)
    messages = read_messages(proc.stdout)
    checker = SchemaChecker()
    for message in messages:
        checker.message.validate(message)
    return messages, proc.returncode


INIT = frame(json.dumps({"jsonrpc": "2.0", "id": "init", "method": "initialize",
                         "params": {"capabilities": {}}}).encode())
