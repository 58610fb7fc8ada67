"""A small HTTP/1.1 server for a few JSON routes, on asyncio and h11.

The health server answers from the first moment of a standby's life, when
nothing but the redeploy lock and the dependency checks is loaded: a web
framework would cost a standby more memory than the rest of it together.
h11 does the protocol (parsing, framing, keep-alive, HTTP/1.0 clients); this
module only reads and writes bytes, with limits and deadlines so that no
client, slow or hostile, can hold the server or its memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from http import HTTPStatus
from typing import Any

import h11

log = logging.getLogger(__name__)

#: A route's handler: the status code and the JSON body to send.
Handler = Callable[[], Awaitable[tuple[int, dict[str, Any]]]]

#: Longest request line plus headers accepted; a health check sends a few hundred bytes.
MAX_HEAD_BYTES = 8 * 1024
#: Longest request body read (and thrown away): these routes take none.
MAX_BODY_BYTES = 64 * 1024
#: How long a keep-alive connection may sit idle before the server closes it.
IDLE_TIMEOUT_SECONDS = 30.0
#: How long a client may take to send one whole request once it has begun.
REQUEST_TIMEOUT_SECONDS = 10.0
#: How long a client may take to accept one response.
WRITE_TIMEOUT_SECONDS = 10.0
#: Most connections served at once; one more is closed on arrival, unanswered.
#: Railway's probe needs one, and each costs a task and buffers: without a cap,
#: idle clients alone could hold the process's memory and file descriptors.
MAX_CONNECTIONS = 64


class _ClientError(Exception):
    """The request cannot be served; answer ``status`` if possible, then close."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class HttpServer:
    """Serves GET (and HEAD) on a fixed set of paths; everything else is 404 or 405."""

    def __init__(
        self,
        routes: Mapping[str, Handler],
        *,
        idle_timeout: float = IDLE_TIMEOUT_SECONDS,
        request_timeout: float = REQUEST_TIMEOUT_SECONDS,
    ) -> None:
        self._routes = dict(routes)
        self._idle_timeout = idle_timeout
        self._request_timeout = request_timeout
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.Task[None]] = set()

    @property
    def port(self) -> int:
        """The port listened on (useful when started on port 0)."""
        if self._server is None or not self._server.sockets:
            raise RuntimeError("the server is not running")
        return int(self._server.sockets[0].getsockname()[1])

    async def start(self, host: str, port: int) -> None:
        self._server = await asyncio.start_server(self._accept, host, port)

    async def stop(self) -> None:
        """Stop listening and end every connection, answered or not."""
        server, self._server = self._server, None
        if server is None:
            return
        server.close()
        for task in list(self._connections):
            task.cancel()
        await asyncio.gather(*self._connections, return_exceptions=True)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if len(self._connections) >= MAX_CONNECTIONS:
            writer.close()  # full: the client sees the connection end at once
            with contextlib.suppress(Exception):
                await writer.wait_closed()
            return
        task = asyncio.current_task()
        if task is not None:
            self._connections.add(task)
        try:
            await self._serve(reader, writer)
        except (ConnectionError, TimeoutError, asyncio.IncompleteReadError):
            pass  # the client went away or stalled: nothing to answer
        finally:
            if task is not None:
                self._connections.discard(task)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connection = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_HEAD_BYTES)
        while True:
            try:
                request = await self._read_request(connection, reader)
                if request is None:
                    return  # closed by the client between requests
                status, body = await self._answer(request)
            except _ClientError as error:
                if connection.our_state in {h11.IDLE, h11.SEND_RESPONSE}:
                    # The rest of what the client sent is unreadable: close after this.
                    body = {"error": str(error)}
                    await self._send(writer, connection, error.status, body, head=False, close=True)
                return
            await self._send(
                writer, connection, status, body, head=request.method == b"HEAD", close=False
            )
            if connection.our_state is h11.MUST_CLOSE:
                return
            try:
                connection.start_next_cycle()
            except h11.LocalProtocolError:
                return  # the client has not finished its request: do not guess

    async def _read_request(
        self, connection: h11.Connection, reader: asyncio.StreamReader
    ) -> h11.Request | None:
        """The next request, its body read and dropped; None if the client closed."""
        event = self._parse(connection)
        if event is h11.NEED_DATA:
            # Between requests a keep-alive client may take its time...
            async with asyncio.timeout(self._idle_timeout):
                data = await reader.read(MAX_HEAD_BYTES)
            if not data:
                return None
            connection.receive_data(data)
        # ...but once it has begun, the whole request must arrive in time.
        # A pipelining client's next request may already be parsed: keep it.
        async with asyncio.timeout(self._request_timeout):
            if event is h11.NEED_DATA:
                event = await self._next_event(connection, reader)
            if event is None or isinstance(event, h11.ConnectionClosed):
                return None
            if not isinstance(event, h11.Request):
                raise _ClientError(400, "expected a request")
            request = event
            head = len(request.target) + sum(len(n) + len(v) + 4 for n, v in request.headers)
            if head > MAX_HEAD_BYTES:
                raise _ClientError(431, "the request's headers are too large")
            received = 0
            while True:
                event = await self._next_event(connection, reader)
                if isinstance(event, h11.EndOfMessage):
                    return request
                if not isinstance(event, h11.Data):
                    raise _ClientError(400, "the request ended early")
                received += len(event.data)
                if received > MAX_BODY_BYTES:
                    raise _ClientError(413, "these routes take no request body")

    @staticmethod
    def _parse(connection: h11.Connection) -> Any:
        try:
            return connection.next_event()
        except h11.RemoteProtocolError as error:
            raise _ClientError(error.error_status_hint, "malformed request") from None

    async def _next_event(self, connection: h11.Connection, reader: asyncio.StreamReader) -> Any:
        """The next event, reading as needed; None if the client closed mid-request."""
        while (event := self._parse(connection)) is h11.NEED_DATA:
            data = await reader.read(MAX_HEAD_BYTES)
            if not data:
                return None
            connection.receive_data(data)
        return event

    async def _answer(self, request: h11.Request) -> tuple[int, dict[str, Any]]:
        path = request.target.split(b"?", 1)[0].decode("ascii", "replace")
        handler = self._routes.get(path)
        if handler is None:
            return 404, {"error": "not found"}
        if request.method not in {b"GET", b"HEAD"}:
            return 405, {"error": "only GET and HEAD are allowed"}
        try:
            return await handler()
        except Exception:
            log.exception("Health route %s failed", path)
            return 500, {"error": "internal error"}

    async def _send(
        self,
        writer: asyncio.StreamWriter,
        connection: h11.Connection,
        status: int,
        body: dict[str, Any],
        *,
        head: bool,
        close: bool,
    ) -> None:
        payload = json.dumps(body, separators=(",", ":")).encode()
        headers = [
            (b"Content-Type", b"application/json; charset=utf-8"),
            (b"Content-Length", str(len(payload)).encode()),
            (b"Cache-Control", b"no-store"),
        ]
        if status == 405:
            headers.append((b"Allow", b"GET, HEAD"))
        if close:
            headers.append((b"Connection", b"close"))
        reason = HTTPStatus(status).phrase.encode()
        data = connection.send(h11.Response(status_code=status, headers=headers, reason=reason))
        if not head:
            data += connection.send(h11.Data(data=payload))
        data += connection.send(h11.EndOfMessage())
        writer.write(data)
        async with asyncio.timeout(WRITE_TIMEOUT_SECONDS):
            await writer.drain()
