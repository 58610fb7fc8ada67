"""A local stand-in for Discord's REST API and gateway, enough for discord.py to log in.

It speaks the real protocol, so the bot under test runs unmodified except
for DISCORD_API_URL:

- REST: GET /users/@me, GET /oauth2/applications/@me, GET /gateway/bot,
  PUT of global and guild application commands (recorded), GET of them
  (what the last PUT stored, in the shape Discord answers with: its own
  fields added, empty and default ones left out) and the interaction
  callback (recorded: which session answered);
- gateway: HELLO (op 10), IDENTIFY (op 2), RESUME (op 6), the READY and
  RESUMED dispatches, HEARTBEAT (op 1) and HEARTBEAT_ACK (op 11), in
  plain-text JSON frames, and INTERACTION_CREATE dispatches on demand.

Like Discord with one bot token, it sends each interaction to every open
session, so two instances handling events at once show up as an interaction
answered twice. Each instance may log in with its own token of the form
``<token>.<name>``, which says whose session answered. It counts gateway
sessions open at the same time, and can close them all and refuse new ones
for a while (a gateway outage). It runs in a thread with its own event loop,
so tests can drive real bot processes with plain blocking code.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSMsgType, web

from bot_process import PATIENCE

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
USER = {"id": "1000000000000000003", "username": "user", "discriminator": "0", "avatar": None}


@dataclass
class Recorded:
    """What the fake has seen; read it from the test thread."""

    identifies: list[dict[str, Any]] = field(default_factory=list)
    command_syncs: list[tuple[str, list[dict[str, Any]]]] = field(default_factory=list)
    open_sessions: int = 0
    max_sessions: int = 0
    #: Gateway sessions ever identified or resumed.
    sessions_opened: int = 0
    rest_calls: list[str] = field(default_factory=list)
    #: Interaction id -> when it was sent (time.monotonic()) and to which sessions.
    interactions: dict[int, tuple[float, list[str]]] = field(default_factory=dict)
    #: Interaction id -> the instance name of each session that answered it.
    answers: dict[int, list[str]] = field(default_factory=dict)
    #: Interaction id -> the body of each callback that answered it.
    callbacks: dict[int, list[dict[str, Any]]] = field(default_factory=dict)
    #: Instance name -> when each of its answers arrived.
    answered_at: dict[str, list[float]] = field(default_factory=dict)


@dataclass
class _Session:
    """One identified gateway connection."""

    name: str
    instance: str
    ws: web.WebSocketResponse
    sequence: int = 1


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
        #: While set, new gateway connections are refused with HTTP 503.
        self.refuse_gateway = False
        #: While set, GETs of the application commands answer this HTTP status.
        self.command_fetch_status: int | None = None
        #: Commands as Discord stores them, per API path (see ``_stored``).
        self.commands: dict[str, list[dict[str, Any]]] = {}
        self.port = 0
        self._sessions: dict[str, _Session] = {}
        self._ids = itertools.count(3000000000000000000)
        self._session_numbers = itertools.count(1)
        self._command_ids: dict[str, str] = {}
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
        self._loop.close()

    def wait_until(self, predicate: Callable[[Recorded], bool], timeout: float = PATIENCE) -> bool:
        """Poll the recorded state until ``predicate`` holds; False on timeout."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate(self.recorded):
                return True
            time.sleep(0.05)
        return predicate(self.recorded)

    def send_interaction(self, command: str = "help") -> int:
        """Send a slash command use to every open session; its interaction id."""
        future = asyncio.run_coroutine_threadsafe(self._send_interaction(command), self._loop)
        return future.result(timeout=10)

    def close_sessions(self, code: int = 4000) -> None:
        """Close every gateway session with ``code``, as Discord does.

        4000 (unknown error, the default) is an outage the client recovers
        from; 4004 (token reset) and 4010 to 4014 are the codes after which
        Discord will not take the session back.
        """
        asyncio.run_coroutine_threadsafe(self._close_sessions(code), self._loop).result(timeout=10)

    def accepts(self, token: str) -> bool:
        return token == self.token or token.startswith(f"{self.token}.")

    @staticmethod
    def instance_of(token: str) -> str:
        """The ``name`` of a ``<token>.<name>`` token ("" for the plain one)."""
        return token.rpartition(".")[2] if "." in token else ""

    async def _send_interaction(self, command: str) -> int:
        interaction_id = next(self._ids)
        command_id = self._command_ids.get(command, "0")
        sent_to = []
        for session in list(self._sessions.values()):
            session.sequence += 1
            payload = {
                "id": str(interaction_id),
                "application_id": APPLICATION_ID,
                "type": 2,
                # The callback URL carries the token: it says who answered.
                "token": f"{session.instance}.{session.name}.{interaction_id}",
                "version": 1,
                "data": {"id": command_id, "name": command, "type": 1},
                "user": USER,
                "channel": {"id": "4000000000000000001", "type": 1},
                "locale": "en-US",
                "attachment_size_limit": 8388608,
                "entitlements": [],
                "authorizing_integration_owners": {},
                "context": 1,
            }
            frame = {"op": 0, "t": "INTERACTION_CREATE", "s": session.sequence, "d": payload}
            with contextlib.suppress(ConnectionError, RuntimeError):  # closing meanwhile
                await session.ws.send_json(frame)
                sent_to.append(session.instance)
        self.recorded.interactions[interaction_id] = (time.monotonic(), sent_to)
        return interaction_id

    async def _close_sessions(self, code: int) -> None:
        for session in list(self._sessions.values()):
            await session.ws.close(code=code, message=b"Gateway outage.")

    async def _start(self) -> None:
        app = web.Application()
        api = "/api/v10"
        app.router.add_get(f"{api}/users/@me", self._me)
        app.router.add_get(f"{api}/oauth2/applications/@me", self._application)
        app.router.add_get(f"{api}/gateway/bot", self._gateway_bot)
        app.router.add_put(api + "/applications/{app}/commands", self._sync)
        app.router.add_put(api + "/applications/{app}/guilds/{guild}/commands", self._sync)
        app.router.add_get(api + "/applications/{app}/commands", self._commands)
        app.router.add_get(api + "/applications/{app}/guilds/{guild}/commands", self._commands)
        app.router.add_post(api + "/interactions/{id}/{token}/callback", self._callback)
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
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        return scheme == "Bot" and self.accepts(token)

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
        for index, command in enumerate(payload):
            self._command_ids[command["name"]] = str(2000000000000000000 + index)
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
        self.commands[request.path] = [_stored(command) for command in created]
        return _json(created)

    async def _commands(self, request: web.Request) -> web.Response:
        if not self._authorised(request):
            return self._unauthorised()
        if self.command_fetch_status is not None:
            message = {"message": "Refused by the test.", "code": 0}
            return _json(message, status=self.command_fetch_status)
        return _json(self.commands.get(request.path, []))

    async def _callback(self, request: web.Request) -> web.Response:
        instance = request.match_info["token"].partition(".")[0]
        interaction_id = int(request.match_info["id"])
        self.recorded.answers.setdefault(interaction_id, []).append(instance)
        body = await request.json() if request.content_type == "application/json" else {}
        self.recorded.callbacks.setdefault(interaction_id, []).append(body)
        self.recorded.answered_at.setdefault(instance, []).append(time.monotonic())
        return _json({"interaction": {"id": str(interaction_id), "type": 2}})

    async def _gateway(self, request: web.Request) -> web.StreamResponse:
        if self.refuse_gateway:
            return web.Response(status=503, text="Gateway unavailable.")
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        await ws.send_json({"op": 10, "d": {"heartbeat_interval": 41250}, "s": None, "t": None})
        session: _Session | None = None
        try:
            async for message in ws:
                if message.type != WSMsgType.TEXT:
                    continue
                frame = message.json()
                if frame["op"] == 1:
                    await ws.send_json({"op": 11, "d": None, "s": None, "t": None})
                elif frame["op"] in (2, 6) and session is None:
                    if not self.accepts(frame["d"]["token"]):
                        await ws.close(code=4004, message=b"Authentication failed.")
                        break
                    if self.close_code is not None:
                        await ws.close(code=self.close_code, message=b"Disallowed intent(s).")
                        break
                    session = self._open(frame["d"]["token"], ws)
                    if frame["op"] == 2:
                        self.recorded.identifies.append(frame["d"])
                        ready = {"op": 0, "t": "READY", "s": 1, "d": self._ready(session.name)}
                        await ws.send_json(ready)
                    else:
                        # Nothing was missed that a test cares about: resume.
                        session.sequence = frame["d"]["seq"] or 1
                        await ws.send_json(
                            {"op": 0, "t": "RESUMED", "s": session.sequence, "d": {}}
                        )
        finally:
            if session is not None:
                del self._sessions[session.name]
                self.recorded.open_sessions -= 1
        return ws

    def _open(self, token: str, ws: web.WebSocketResponse) -> _Session:
        name = f"session-{next(self._session_numbers)}"
        session = _Session(name=name, instance=self.instance_of(token), ws=ws)
        self._sessions[name] = session
        self.recorded.open_sessions += 1
        self.recorded.sessions_opened += 1
        self.recorded.max_sessions = max(self.recorded.max_sessions, self.recorded.open_sessions)
        return session

    def _ready(self, session: str) -> dict[str, Any]:
        return {
            "v": 10,
            "user": BOT_USER,
            "guilds": [],
            "session_id": session,
            "resume_gateway_url": self.url.replace("http", "ws", 1) + "/gateway",
            "application": {"id": APPLICATION_ID, "flags": 0},
        }


def _stored(command: dict[str, Any]) -> dict[str, Any]:
    """A command as Discord's GET returns it, not as it was sent.

    Discord adds fields of its own, fills contexts and integration_types with
    its defaults, and leaves out empty options and localizations and fields
    that hold their default (an option's ``required: false``); a guild
    command has no ``dm_permission``.
    """

    def trim(data: dict[str, Any]) -> dict[str, Any]:
        kept = {}
        for key, value in data.items():
            if key == "options" and value:
                kept[key] = [trim(option) for option in value]
            elif key == "default_member_permissions" or not _unset(value):
                kept[key] = value
        return kept

    stored = trim(command)
    if command.get("guild_id"):
        stored.pop("dm_permission", None)
    else:
        stored["dm_permission"] = command.get("dm_permission", True)
    stored["contexts"] = command.get("contexts") or [0, 1, 2]
    stored["integration_types"] = command.get("integration_types") or [0]
    stored["nsfw"] = command.get("nsfw", False)
    return stored


def _unset(value: object) -> bool:
    return value is None or value is False or value == [] or value == {}
