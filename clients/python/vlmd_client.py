"""A small asyncio client for vlmd (standard library only).

    import asyncio, vlmd_client

    async def main():
        async with await vlmd_client.VlmdClient.start(["vlmd"]) as vlm:
            print(await vlm.request("ping"))
            stream = vlm.stream("debug/stream", {"count": 5, "intervalMs": 100})
            async for partial in stream:      # incremental results, as they arrive
                print(partial)
            print(await stream.result)        # the final reply

    asyncio.run(main())

Errors from the daemon raise VlmdError (with .code, .message, .data). Cancelling the task that
awaits a request, or calling stream.cancel(), sends $/cancelRequest; the daemon then answers
-32800, which surfaces as VlmdError(code=-32800).

`VlmdClient.connect()` joins the shared daemon that `vlm daemon start` (or `vlmd --socket PATH`)
runs, so models stay loaded across scripts and notebook kernels; `VlmdClient.open()` connects when
one listens and starts a private subprocess otherwise.

Typed helpers (encode_image, classify, generate, generate_with_visual_selection, load_model)
returning dataclasses are in vlmd_methods.py; VlmdClient has them.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
from typing import Any, AsyncIterator, Callable, Optional

from vlmd_methods import (Classification, DenseFeatures, EncodedImage, Generation, Stage,  # noqa: F401 (re-exported)
                          TypedMethods, VisualReasoning)

REQUEST_CANCELLED = -32800


class VlmdError(Exception):
    """An error reply from the daemon."""

    def __init__(self, code: int, message: str, data: Any = None):
        super().__init__(f"{message} (code {code})")
        self.code, self.message, self.data = code, message, data


def encode_frame(message: dict) -> bytes:
    body = json.dumps(message, separators=(",", ":")).encode("utf-8")
    return b"Content-Length: %d\r\n\r\n" % len(body) + body


async def read_frame(reader: asyncio.StreamReader) -> Optional[dict]:
    """Reads one framed message; None at end of stream."""
    length = None
    while True:
        line = await reader.readline()
        if not line:
            return None
        line = line.rstrip(b"\r\n")
        if not line:
            break
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    if length is None:
        raise ValueError("frame without Content-Length")
    return json.loads(await reader.readexactly(length))


class Stream:
    """A request whose incremental results arrive as an async iterator; `result` is the final reply."""

    def __init__(self, client: "VlmdClient", request_id: int, on_progress: Optional[Callable[[dict], None]]):
        self._client, self.id, self._on_progress = client, request_id, on_progress
        self._partials: asyncio.Queue = asyncio.Queue()
        self.result: asyncio.Future = asyncio.get_running_loop().create_future()
        self.result.add_done_callback(lambda _: self._partials.put_nowait(_END))

    def _notify(self, value: Any) -> None:
        if isinstance(value, dict) and value.get("kind") in ("begin", "report", "end"):
            if self._on_progress:
                self._on_progress(value)
        else:
            self._partials.put_nowait(value)

    async def cancel(self) -> None:
        await self._client.notify("$/cancelRequest", {"id": self.id})

    def __aiter__(self) -> AsyncIterator[Any]:
        return self._iterate()

    async def _iterate(self):
        while True:
            item = await self._partials.get()
            if item is _END:
                return
            yield item


_END = object()


def default_socket_path(environ=os.environ) -> str:
    """Where `vlm daemon start` puts the shared daemon's socket (the same rule as the Swift side:
    $VLMD_SOCKET, else $XDG_RUNTIME_DIR/vlmd/vlmd.sock, else ~/.cache/vlmd/run/vlmd.sock)."""
    if environ.get("VLMD_SOCKET"):
        return environ["VLMD_SOCKET"]
    if environ.get("XDG_RUNTIME_DIR"):
        return os.path.join(environ["XDG_RUNTIME_DIR"], "vlmd", "vlmd.sock")
    cache = environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(cache, "vlmd", "run", "vlmd.sock")


class VlmdClient(TypedMethods):
    """One connection to vlmd: a private subprocess (`await VlmdClient.start([...])`) or the shared
    daemon's Unix socket (`await VlmdClient.connect()`). Then `request` / `stream`, or the typed
    helpers (`encode_image`, `classify`, `generate`, `generate_with_visual_selection`)."""

    def __init__(self, reader: asyncio.StreamReader, writer, process: asyncio.subprocess.Process | None = None):
        self.process = process  # None on a socket: the daemon outlives this connection
        self._input, self._output = reader, writer
        self._ids = itertools.count(1)
        self._streams: dict[int, Stream] = {}
        self.on_log: Callable[[dict], None] = lambda params: None
        self.server_info: dict = {}
        self._reader = asyncio.create_task(self._read_loop())

    @classmethod
    async def start(cls, command: list[str] | None = None, *, initialization_options: dict | None = None,
                    client_name: str = "vlmd_client.py", stderr=None) -> "VlmdClient":
        """Starts a private vlmd subprocess; `close` ends it."""
        command = command or [os.environ.get("VLMD", "vlmd")]
        process = await asyncio.create_subprocess_exec(
            *command, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=stderr,
            limit=1 << 30)
        client = cls(process.stdout, process.stdin, process)
        return await client._initialize(client_name, initialization_options)

    @classmethod
    async def connect(cls, path: str | None = None, *, initialization_options: dict | None = None,
                      client_name: str = "vlmd_client.py") -> "VlmdClient":
        """Connects to a daemon listening on a Unix socket (default: `default_socket_path()`); `close`
        ends only this connection, and models loaded through it stay resident for the next one.
        Raises FileNotFoundError / ConnectionRefusedError when no daemon listens there."""
        reader, writer = await asyncio.open_unix_connection(path or default_socket_path(), limit=1 << 30)
        client = cls(reader, writer)
        return await client._initialize(client_name, initialization_options)

    @classmethod
    async def open(cls, command: list[str] | None = None, *, socket_path: str | None = None, stderr=None,
                   **options) -> "VlmdClient":
        """The shared daemon if one listens at `socket_path` (default: `default_socket_path()`),
        otherwise a private subprocess started with `command` (its stderr goes to `stderr`)."""
        try:
            return await cls.connect(socket_path, **options)
        except (FileNotFoundError, ConnectionRefusedError):
            return await cls.start(command, stderr=stderr, **options)

    @property
    def shared(self) -> bool:
        """True on a socket connection to a daemon that other clients may use too."""
        return self.process is None

    async def _initialize(self, client_name: str, initialization_options: dict | None) -> "VlmdClient":
        self.server_info = await self.request("initialize", {
            "processId": os.getpid(), "clientInfo": {"name": client_name},
            "capabilities": {}, "initializationOptions": initialization_options or {}})
        await self.notify("initialized", {})
        return self

    async def __aenter__(self) -> "VlmdClient":
        return self

    async def __aexit__(self, *exc) -> None:
        await self.close()

    async def notify(self, method: str, params: Any = None) -> None:
        await self._send({"jsonrpc": "2.0", "method": method, "params": params if params is not None else {}})

    def stream(self, method: str, params: dict | None = None, *,
               on_progress: Optional[Callable[[dict], None]] = None) -> Stream:
        """Starts a request with progress and partial-result tokens; returns at once."""
        request_id = next(self._ids)
        stream = Stream(self, request_id, on_progress)
        self._streams[request_id] = stream
        message = {"jsonrpc": "2.0", "id": request_id, "method": method,
                   "params": {**(params or {}), "workDoneToken": request_id, "partialResultToken": request_id}}
        if method == "initialize":
            message["params"] = params or {}
        # Written at once, in call order (a synchronous write on the event loop cannot interleave);
        # `request` then awaits the pipe draining, which is the back-pressure.
        self._output.write(encode_frame(message))
        return stream

    async def request(self, method: str, params: dict | None = None, *,
                      on_progress: Optional[Callable[[dict], None]] = None,
                      on_partial: Optional[Callable[[Any], None]] = None) -> Any:
        """Sends a request and returns its result. Cancelling the awaiting task cancels the request."""
        stream = self.stream(method, params, on_progress=on_progress)
        try:
            await self._output.drain()
            if on_partial is None:
                return await asyncio.shield(stream.result)
            async for partial in stream:
                on_partial(partial)
            return await stream.result
        except asyncio.CancelledError:
            if not stream.result.done():
                await stream.cancel()
                try:
                    await asyncio.wait_for(asyncio.shield(stream.result), 10)
                except (VlmdError, asyncio.TimeoutError):
                    pass
            raise

    async def close(self) -> int | None:
        """shutdown + exit. Returns the subprocess's exit code; on a socket, only this connection
        ends (the shared daemon keeps serving) and the result is None."""
        if self.process is None or self.process.returncode is None:
            try:
                await self.request("shutdown")
                await self.notify("exit")
            except (VlmdError, ConnectionError, BrokenPipeError):
                pass
        if self.process is None:
            self._output.close()
            await self._reader
            return None
        code = await self.process.wait()
        await self._reader
        return code

    async def _send(self, message: dict) -> None:
        self._output.write(encode_frame(message))
        await self._output.drain()

    async def _read_loop(self) -> None:
        try:
            while (message := await read_frame(self._input)) is not None:
                self._dispatch(message)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass  # the daemon went away; the requests still waiting fail below
        finally:
            for stream in self._streams.values():
                if not stream.result.done():
                    stream.result.set_exception(ConnectionError("vlmd exited before replying"))
            self._streams.clear()

    def _dispatch(self, message: dict) -> None:
        if "method" in message:
            params = message.get("params") or {}
            if message["method"] == "$/progress" and params.get("token") in self._streams:
                self._streams[params["token"]]._notify(params.get("value"))
            elif message["method"] == "window/logMessage":
                self.on_log(params)
            return
        stream = self._streams.pop(message.get("id"), None)
        if stream is None or stream.result.done():
            return
        if "error" in message:
            error = message["error"]
            stream.result.set_exception(VlmdError(error["code"], error["message"], error.get("data")))
        else:
            stream.result.set_result(message.get("result"))
