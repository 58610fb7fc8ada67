"""A local stand-in for Discord's REST API and gateway, enough for discord.py to log in.

It speaks the real protocol, so the bot under test runs unmodified except
for DISCORD_API_URL:

- REST: GET /users/@me, GET /oauth2/applications/@me, GET /gateway/bot and
  PUT of global and guild application commands (recorded);
- gateway: HELLO (op 10), IDENTIFY (op 2), the READY dispatch, HEARTBEAT
  (op 1) and HEARTBEAT_ACK (op 11), in plain-text JSON frames.

It counts gateway sessions that are open at the same time: two bot
instances answering at once shows up as ``max_sessions == 2``. It runs in a
thread with its own event loop, so tests can drive real bot processes with
plain blocking code.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSMsgType, web

APPLICATION_ID = "1000000000000000001"
BOT_USER = {
    "id": APPLICATION_ID,
    "username": "test-bot",
    "discriminator": "0",
    "global_name": None,
    "avatar": None,
    "bot": True,
    "flags": 0,
    "verified": True,
    "mfa_enabled": False,
}
OWNER = {"id": "1000000000000000002", "username": "owner", "discriminator": "0", "avatar": None}


@dataclass
class Recorded:
    """What the fake has seen; read it from the test thread."""

    identifies: list[dict[str, Any]] = field(default_factory=list)
    command_syncs: list[tuple[str, list[dict[str, Any]]]] = field(default_factory=list)
    open_sessions: int = 0
    max_sessions: int = 0
    rest_calls: list[str] = field(default_factory=list)


def _json(data: object, status: int = 200) -> web.Response:
    # discord.py parses a body only when Content-Type is exactly this, with
    # no charset parameter (aiohttp's json_response adds one).
    return web.Response(
        body=json.dumps(data).encode(), status=status, headers={"Content-Type": "application/json"}
    )


class FakeDiscord:
    """Start with ``with FakeDiscord(token) as discord:``; point the bot at ``discord.url``."""

    def __init__(self, token: str, *, close_code: int | None = None) -> None:
        self.token = token
        #: Close every gateway session with this code after IDENTIFY (4014:
        #: disallowed intents), instead of sending READY.
        self.close_code = close_code
        self.recorded = Recorded()
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> FakeDiscord:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(timeout=10)
        return self

    def __exit__(self, *exc_info: object) -> None:
        asyncio.run_coroutine_threadsafe(self._stop(), self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)

    def wait_until(self, predicate: Callable[[Recorded], bool], timeout: float = 15.0) -> bool:
        """Poll the recorded state until ``predicate`` holds; False on timeout."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate(self.recorded):
                return True
            time.sleep(0.05)
        return predicate(self.recorded)

    async def _start(self) -> None:
        app = web.Application()
        api = "/api/v10"
        app.router.add_get(f"{api}/users/@me", self._me)
        app.router.add_get(f"{api}/oauth2/applications/@me", self._application)
        app.router.add_get(f"{api}/gateway/bot", self._gateway_bot)
        app.router.add_put(api + "/applications/{app}/commands", self._sync)
        app.router.add_put(api + "/applications/{app}/guilds/{guild}/commands", self._sync)
        app.router.add_get("/gateway", self._gateway)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = self._runner.addresses[0][1]

    async def _stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    def _authorised(self, request: web.Request) -> bool:
        self.recorded.rest_calls.append(f"{request.method} {request.path}")
        return request.headers.get("Authorization") == f"Bot {self.token}"

    @staticmethod
    def _unauthorised() -> web.Response:
        return _json({"message": "401: Unauthorized", "code": 0}, status=401)

    async def _me(self, request: web.Request) -> web.Response:
        if not self._authorised(request):
            return self._unauthorised()
        return _json(BOT_USER)

    async def _application(self, request: web.Request) -> web.Response:
        if not self._authorised(request):
            return self._unauthorised()
        return _json(
            {
                "id": APPLICATION_ID,
                "name": "test-bot",
                "description": "",
                "icon": None,
                "bot_public": False,
                "bot_require_code_grant": False,
                "owner": OWNER,
                "verify_key": "0" * 64,
                "flags": 0,
            }
        )

    async def _gateway_bot(self, request: web.Request) -> web.Response:
        if not self._authorised(request):
            return self._unauthorised()
        return _json(
            {
                "url": self.url.replace("http", "ws", 1) + "/gateway",
                "shards": 1,
                "session_start_limit": {
                    "total": 1000,
                    "remaining": 999,
                    "reset_after": 0,
                    "max_concurrency": 1,
                },
            }
        )

    async def _sync(self, request: web.Request) -> web.Response:
        if not self._authorised(request):
            return self._unauthorised()
        payload: list[dict[str, Any]] = await request.json()
        self.recorded.command_syncs.append((request.path, payload))
        guild = request.match_info.get("guild")
        created = [
            {
                **command,
                "id": str(2000000000000000000 + index),
                "application_id": APPLICATION_ID,
                "guild_id": guild,
                "version": "1",
                "default_member_permissions": command.get("default_member_permissions"),
            }
            for index, command in enumerate(payload)
        ]
        return _json(created)

    async def _gateway(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        await ws.send_json({"op": 10, "d": {"heartbeat_interval": 41250}, "s": None, "t": None})
        identified = False
        try:
            async for message in ws:
                if message.type != WSMsgType.TEXT:
                    continue
                frame = message.json()
                if frame["op"] == 1:
                    await ws.send_json({"op": 11, "d": None, "s": None, "t": None})
                elif frame["op"] == 2:
                    if frame["d"]["token"] != self.token:
                        await ws.close(code=4004, message=b"Authentication failed.")
                        break
                    if self.close_code is not None:
                        await ws.close(code=self.close_code, message=b"Disallowed intent(s).")
                        break
                    self.recorded.identifies.append(frame["d"])
                    identified = True
                    self.recorded.open_sessions += 1
                    self.recorded.max_sessions = max(
                        self.recorded.max_sessions, self.recorded.open_sessions
                    )
                    await ws.send_json({"op": 0, "t": "READY", "s": 1, "d": self._ready()})
        finally:
            if identified:
                self.recorded.open_sessions -= 1
        return ws

    def _ready(self) -> dict[str, Any]:
        return {
            "v": 10,
            "user": BOT_USER,
            "guilds": [],
            "session_id": f"session-{len(self.recorded.identifies)}",
            "resume_gateway_url": self.url.replace("http", "ws", 1) + "/gateway",
            "application": {"id": APPLICATION_ID, "flags": 0},
        }
