"""Start a generated bot and measure what Railway and its bill see.

    uv run python benchmarks/bot.py [--runs 5] [--keep DIR]

Renders a project (database=postgres, redis=true), installs it with
``uv sync --locked``, migrates a scratch PostgreSQL database and then starts
``python -m <package>`` several times, measuring:

- time from process start to the first 200 on GET /health (what Railway's
  healthcheck waits for), median and worst of the runs after one warm-up;
- resident memory of the idle bot a few seconds after start;
- GET /health requests per second over one keep-alive connection on
  127.0.0.1 (each request pings PostgreSQL and Redis).

The bot runs as a standby: this script holds the redeploy lock itself, so
the bot never tries to reach Discord (which it could not from here).
Targets: at most 1.0 s to healthy and 70 MB of RSS.

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

TARGET_HEALTHY_SECONDS = 1.0
TARGET_RSS_MB = 70
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
    env = {**os.environ, "UV_PYTHON_DOWNLOADS": "never"}
    env.pop("VIRTUAL_ENV", None)
    subprocess.run(
        [uv(), "sync", "--locked", "--quiet", "--no-dev"], cwd=project, env=env, check=True
    )
    return project / ".venv" / "bin" / "python"


def package_name(project: Path) -> str:
    return next(p.name for p in (project / "src").iterdir() if (p / "__init__.py").exists())


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def wait_healthy(port: int, process: subprocess.Popen[bytes], timeout: float = 30.0) -> float:
    """Seconds from now until /health answers 200 (call right after Popen)."""
    started = time.perf_counter()
    while time.perf_counter() - started < timeout:
        if process.poll() is not None:
            raise RuntimeError(f"bot exited with {process.returncode}")
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            connection.request("GET", "/health")
            if connection.getresponse().status == 200:
                return time.perf_counter() - started
        except OSError:
            pass
        time.sleep(0.005)
    raise RuntimeError("/health never answered 200")


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
            healthy: list[float] = []
            rss: list[float] = []
            rps: list[float] = []
            for run in range(args.runs + 1):
                port = free_port()
                process = subprocess.Popen(
                    [python, "-m", package], cwd=project, env=env | {"PORT": str(port)}
                )
                try:
                    seconds = wait_healthy(port, process)
                    time.sleep(3)  # idle: the standby polls the lock once a second
                    if run == 0:
                        continue  # warm-up: writes the bytecode caches
                    healthy.append(seconds)
                    rss.append(rss_mb(process.pid))
                    if run == 1:
                        rps.append(requests_per_second(port))
                finally:
                    process.send_signal(signal.SIGTERM)
                    status = process.wait(timeout=15)
                if status != 0:
                    raise RuntimeError(f"bot exited with {status} after SIGTERM")
    finally:
        with psycopg.connect(server_url, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)

    median = statistics.median(healthy)
    print("project: database=postgres, redis=true; the bot is a standby (lock held here)")
    print(
        f"time to healthy: median {median:.3f} s, worst {max(healthy):.3f} s "
        f"over {len(healthy)} starts (target <= {TARGET_HEALTHY_SECONDS} s)"
    )
    print(
        f"idle RSS: median {statistics.median(rss):.1f} MB, worst {max(rss):.1f} MB "
        f"(target <= {TARGET_RSS_MB} MB)"
    )
    print(
        f"/health: {rps[0]:.0f} requests/s over one keep-alive connection for {RPS_SECONDS:.0f} s"
    )
    ok = median <= TARGET_HEALTHY_SECONDS and max(rss) <= TARGET_RSS_MB
    print("targets met" if ok else "TARGETS MISSED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
