"""Start a generated bot and measure what Railway and its bill see.

    uv run python benchmarks/bot.py [--runs 5] [--keep DIR]

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
active bot in at most 75 MB.

Needs PostgreSQL and Redis: BENCH_DATABASE_URL (default
postgresql://postgres@127.0.0.1:5432/test, a server where a database may be
created) and BENCH_REDIS_URL (default redis://127.0.0.1:6379/15).
"""

from __future__ import annotations

import argparse
import http.client
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path
from urllib.parse import urlsplit

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

import matrix

TARGET_HEALTHY_SECONDS = 0.35
TARGET_STANDBY_RSS_MB = 60
TARGET_ACTIVE_RSS_MB = 75
#: Seconds a bot idles before its memory is read.
IDLE_SECONDS = 3.0
ANSWERS = {"database": "postgres", "redis": True}
ENVIRONMENT = "benchmark"
RPS_SECONDS = 5.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def uv() -> str:
    # `uv run` tells its children where it lives; otherwise prefer the uv
    # installed beside this interpreter (the template's dev environment) over
    # PATH, where a version-manager shim may pick another Python's uv.
    beside = Path(sys.executable).parent / "uv"
    found = os.environ.get("UV") or (str(beside) if beside.exists() else shutil.which("uv"))
    if found is None:
        sys.exit("uv is not on PATH")
    return found


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


def start_bot(
    python: Path, package: str, project: Path, env: dict[str, str]
) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    process = subprocess.Popen([python, "-m", package], cwd=project, env=env | {"PORT": str(port)})
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
    python: Path, package: str, project: Path, env: dict[str, str], runs: int
) -> tuple[list[float], list[float], float]:
    """Start-to-healthy seconds and idle RSS per run, and /health requests per second."""
    healthy: list[float] = []
    rss: list[float] = []
    rps = 0.0
    for run in range(runs + 1):
        process, port = start_bot(python, package, project, env)
        try:
            seconds = wait_healthy(port, process)
            time.sleep(IDLE_SECONDS)
            if run == 0:
                continue  # warm-up: the page cache, PostgreSQL's and Redis's
            healthy.append(seconds)
            rss.append(rss_mb(process.pid))
            if run == 1:
                rps = requests_per_second(port)
        finally:
            stop_bot(process)
    return healthy, rss, rps


def measure_active(
    python: Path, package: str, project: Path, env: dict[str, str], runs: int
) -> list[float]:
    """Idle RSS of the active bot, logged in to the fake Discord."""
    token = "benchmark-token"
    fake = subprocess.Popen(
        [python, "-c", FAKE_DISCORD, token],
        cwd=project,
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
            "LEADER_LEASE_SECONDS": "2",
        }
        rss: list[float] = []
        for _ in range(runs):
            process, port = start_bot(python, package, project, active_env)
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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="timed starts after one warm-up")
    parser.add_argument("--keep", type=Path, help="render into DIR and keep it")
    args = parser.parse_args()
    server_url = os.environ.get("BENCH_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")
    redis_url = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/15")

    root = args.keep or Path(matrix.scratch_dir("crb-bench-"))
    project = matrix.render(ANSWERS, root / "project")
    python = install(project)
    package = package_name(project)

    database = f"bench_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(server_url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{database}"')
    url = urlsplit(server_url)._replace(path=f"/{database}").geturl()
    env = {
        "PATH": os.environ["PATH"],
        "DISCORD_TOKEN": "benchmark-token",
        "DATABASE_URL": url,
        "REDIS_URL": redis_url,
        "RAILWAY_ENVIRONMENT_NAME": ENVIRONMENT,
        "LOG_LEVEL": "WARNING",
    }
    try:
        subprocess.run([python, "-m", package, "migrate"], cwd=project, env=env, check=True)
        # Hold the bot's own redeploy lock, so every bot started here stays a
        # standby and never reaches for Discord.
        key = subprocess.run(
            [
                python,
                "-c",
                f"from {package}.leader import lock_key; "
                f"print(lock_key('{package}:{ENVIRONMENT}:leader'))",
            ],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        with psycopg.connect(url, autocommit=True) as holder:
            holder.execute(f"SELECT pg_advisory_lock({int(key)})")
            healthy, standby_rss, rps = measure_standby(python, package, project, env, args.runs)
        active_rss = measure_active(python, package, project, env, max(1, args.runs // 2))
    finally:
        with psycopg.connect(server_url, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)

    median = statistics.median(healthy)
    standby = statistics.median(standby_rss)
    active = statistics.median(active_rss)
    print("project: database=postgres, redis=true, installed as in the Docker image")
    print(
        f"standby, start to healthy: median {median:.3f} s, worst {max(healthy):.3f} s "
        f"over {len(healthy)} starts (target <= {TARGET_HEALTHY_SECONDS} s)"
    )
    print(
        f"standby, idle RSS: median {standby:.1f} MB, worst {max(standby_rss):.1f} MB "
        f"(target <= {TARGET_STANDBY_RSS_MB} MB)"
    )
    print(
        f"active on the fake gateway, idle RSS: median {active:.1f} MB, "
        f"worst {max(active_rss):.1f} MB over {len(active_rss)} starts "
        f"(target <= {TARGET_ACTIVE_RSS_MB} MB)"
    )
    print(f"/health: {rps:.0f} requests/s over one keep-alive connection for {RPS_SECONDS:.0f} s")
    ok = (
        median <= TARGET_HEALTHY_SECONDS
        and standby <= TARGET_STANDBY_RSS_MB
        and active <= TARGET_ACTIVE_RSS_MB
    )
    print("targets met" if ok else "TARGETS MISSED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
