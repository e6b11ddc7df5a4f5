"""The real loopback services the tests use: distribution's `docker-registry` and podman's Docker-API engine.

Two ways in, same code:
- `.ci/services start|stop` runs `python -m tests.support.services start|stop`: the services outlive this
  process, their pids and paths go to `.ci/state/services.json`, and `.ci/state/services.env` holds the
  variables below for the test run.
- the pytest fixtures in tests/conftest.py use those variables when set, and otherwise start their own
  instances with `start_registry` / `start_engine` and stop them at the end of the session.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import requests
from docker.client import DockerClient

from charon_ci.registry import RegistryClient

ENV_REGISTRY = "CHARON_TEST_REGISTRY"  # host:port of the registry, e.g. 127.0.0.1:5123
ENV_REGISTRY_STORAGE = "CHARON_TEST_REGISTRY_STORAGE"  # its filesystem rootdirectory
ENV_REGISTRY_CONFIG = "CHARON_TEST_REGISTRY_CONFIG"  # its config.yml (for `docker-registry garbage-collect`)
ENV_DOCKER_HOST = "CHARON_TEST_DOCKER_HOST"  # unix:///.../engine.sock of the podman service
ENV_REGISTRY_PORT = "CHARON_TEST_REGISTRY_PORT"  # optional: the port `.ci/services start` should use

REGISTRY_BINARY = "docker-registry"
ENGINE_BINARY = "podman"
READY_TIMEOUT = 60.0


class ServiceError(RuntimeError):
    """A service could not be started or reached; the message says which and where its log is."""


@dataclass(frozen=True)
class Registry:
    """A running registry: `host` is what goes into image references (`127.0.0.1:5123/repo:tag`)."""

    host: str
    storage_dir: Path | None = None
    config_path: Path | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}"

    def client(
        self, username: str | None = None, password: str | None = None, session: requests.Session | None = None
    ) -> RegistryClient:
        """charon_ci's registry client for this registry (no retries: a loopback failure is a real failure)."""
        return RegistryClient(self.host, username=username, password=password, session=session, retries=0)

    def _repositories_dir(self) -> Path:
        if self.storage_dir is None:
            raise ServiceError(f"the storage of registry {self.host} is unknown (set {ENV_REGISTRY_STORAGE})")
        return self.storage_dir / "docker" / "registry" / "v2" / "repositories"

    def stored_manifests(self, repository: str) -> dict[str, float]:
        """Every manifest digest the repository holds, tagged or not, with the time it was (last) pushed.

        The distribution API cannot list untagged manifests; GHCR's package versions can, so a fake of
        them reads the storage. A deleted manifest keeps its directory but loses its `link` file.
        """
        revisions = self._repositories_dir() / repository / "_manifests" / "revisions"
        found: dict[str, float] = {}
        for link in revisions.glob("*/*/link"):
            found[f"{link.parent.parent.name}:{link.parent.name}"] = link.stat().st_mtime
        return dict(sorted(found.items(), key=lambda item: item[1]))

    def stored_repositories(self) -> list[str]:
        root = self._repositories_dir()
        return sorted(str(p.parent.relative_to(root)) for p in root.rglob("_manifests"))

    def blob_bytes_on_disk(self) -> int:
        """Bytes of blob data the registry stores (all repositories), for garbage-collection checks."""
        if self.storage_dir is None:
            raise ServiceError(f"the storage of registry {self.host} is unknown (set {ENV_REGISTRY_STORAGE})")
        blobs = self.storage_dir / "docker" / "registry" / "v2" / "blobs"
        return sum(p.stat().st_size for p in blobs.rglob("data") if p.is_file())

    def garbage_collect(self, delete_untagged: bool = False) -> str:
        """Run distribution's garbage collector on this registry's storage; returns its output."""
        if self.config_path is None:
            raise ServiceError(f"the config of registry {self.host} is unknown (set {ENV_REGISTRY_CONFIG})")
        command = [REGISTRY_BINARY, "garbage-collect", str(self.config_path)]
        if delete_untagged:
            command.insert(2, "--delete-untagged")
        done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
        if done.returncode != 0:
            raise ServiceError(f"docker-registry garbage-collect failed: {done.stderr.strip()[-2000:]}")
        return done.stdout


@dataclass(frozen=True)
class Engine:
    """A running Docker-API engine (podman system service)."""

    docker_host: str

    def client(self, timeout: int = 300) -> DockerClient:
        return DockerClient(base_url=self.docker_host, timeout=timeout)


@dataclass(frozen=True)
class Process:
    """A service process we started: its pid (also its process group) and what identifies it in /proc."""

    name: str
    pid: int
    marker: str  # a path on its command line, so a recycled pid is never mistaken for ours
    log: Path
    # set when this Python process started it: then it is also reaped here, not left a zombie
    handle: subprocess.Popen[bytes] | None = field(default=None, compare=False, repr=False)


# --- starting --------------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _require(binary: str) -> str:
    path = shutil.which(binary)
    if path is None:
        raise ServiceError(f"{binary} is not installed; run `bash .ci/setup` (it installs it from Debian)")
    return path


def _spawn(name: str, command: list[str], log: Path, env: Mapping[str, str] | None = None) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        # a session of its own: it outlives `.ci/services start`, and stopping its group stops only it
        return subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env={**os.environ, **(env or {})},
        )


def _log_tail(log: Path, lines: int = 15) -> str:
    try:
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _wait(name: str, ready: Callable[[], bool], process: subprocess.Popen[bytes], log: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise ServiceError(f"{name} exited with {process.returncode} while starting; log {log}:\n{_log_tail(log)}")
        if ready():
            return
        time.sleep(0.1)
    raise ServiceError(f"{name} not ready after {timeout:.0f}s; log {log}:\n{_log_tail(log)}")


def registry_ready(host: str, credentials: tuple[str, str] | None = None) -> bool:
    try:
        return requests.get(f"http://{host}/v2/", auth=credentials, timeout=2).status_code == 200
    except requests.RequestException:
        return False


def engine_ready(docker_host: str) -> bool:
    try:
        client = DockerClient(base_url=docker_host, timeout=5)
        try:
            return bool(client.ping())
        finally:
            client.close()
    except Exception:  # docker-py raises several unrelated types before the socket exists
        return False


def registry_config(storage: Path, port: int, htpasswd: Path | None = None) -> str:
    auth = f"auth:\n  htpasswd:\n    realm: charon-test\n    path: {json.dumps(str(htpasswd))}\n" if htpasswd else ""
    return (
        "version: 0.1\n"
        "log:\n  level: info\n  accesslog:\n    disabled: false\n"
        f"storage:\n  filesystem:\n    rootdirectory: {json.dumps(str(storage))}\n"
        "  delete:\n    enabled: true\n"
        "  maintenance:\n    uploadpurging:\n      enabled: false\n"
        f"http:\n  addr: 127.0.0.1:{port}\n  secret: charon-ci-loopback-only\n"
        f"{auth}"
    )


def htpasswd_line(username: str, password: str) -> str:
    """An htpasswd entry distribution accepts (bcrypt, lowest cost: the registry checks it on every request)."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import crypt  # Python 3.11/3.12 (the project's venv); removed in 3.13

    salt = crypt.mksalt(crypt.METHOD_BLOWFISH, rounds=16)  # noqa: S324 - bcrypt; low cost suits a loopback test
    return f"{username}:{crypt.crypt(password, salt)}\n"


def start_registry(
    workdir: Path,
    port: int | None = None,
    timeout: float = READY_TIMEOUT,
    credentials: tuple[str, str] | None = None,
) -> tuple[Registry, Process]:
    """Start `docker-registry serve` on 127.0.0.1 with storage under `workdir`; wait for `GET /v2/` = 200.

    With `credentials` (user, password) the registry requires basic auth (htpasswd).
    """
    binary = _require(REGISTRY_BINARY)
    storage = workdir / "registry-storage"
    storage.mkdir(parents=True, exist_ok=True)
    htpasswd = None
    if credentials is not None:
        htpasswd = workdir / "htpasswd"
        htpasswd.write_text(htpasswd_line(*credentials))
    attempts = 1 if port else 3  # a free port can be taken between probing and binding: try another
    for attempt in range(attempts):
        chosen = port or free_port()
        config = workdir / "registry.yml"
        config.write_text(registry_config(storage, chosen, htpasswd))
        log = workdir / "registry.log"
        process = _spawn("registry", [binary, "serve", str(config)], log)
        host = f"127.0.0.1:{chosen}"
        try:
            ready = functools.partial(registry_ready, host, credentials)
            _wait(f"docker-registry on {host}", ready, process, log, timeout)
        except ServiceError:
            _terminate_child(process)
            if attempt + 1 == attempts:
                raise
            continue
        return Registry(host, storage, config), Process("registry", process.pid, str(config), log, process)
    raise AssertionError("unreachable")


def registries_conf(insecure_hosts: list[str]) -> str:
    """registries.conf that lets the engine talk plain http to the loopback registry and nothing else."""
    entries = "".join(f'\n[[registry]]\nlocation = "{h}"\ninsecure = true\n' for h in insecure_hosts)
    return 'unqualified-search-registries = []\nshort-name-mode = "permissive"\n' + entries


def start_engine(
    workdir: Path, insecure_registries: list[str], timeout: float = READY_TIMEOUT
) -> tuple[Engine, Process]:
    """Start `podman system service` with its own storage (vfs) under `workdir`; wait for `/_ping`."""
    binary = _require(ENGINE_BINARY)
    for sub in ("root", "runroot", "tmp"):
        (workdir / "engine" / sub).mkdir(parents=True, exist_ok=True)
    conf = workdir / "engine" / "registries.conf"
    conf.write_text(registries_conf(insecure_registries))
    sock = workdir / "engine.sock"
    docker_host = f"unix://{sock}"
    if len(str(sock)) > 100:
        raise ServiceError(f"socket path too long for a unix socket: {sock}")
    command = [
        binary,
        "--root", str(workdir / "engine" / "root"),
        "--runroot", str(workdir / "engine" / "runroot"),
        "--tmpdir", str(workdir / "engine" / "tmp"),
        "--storage-driver", "vfs",  # no overlay mounts: works in an unprivileged container, nothing to unmount
        "--cgroup-manager", "cgroupfs",
        "--events-backend", "file",
        "system", "service", "--time=0", docker_host,
    ]  # fmt: skip
    env = {
        "CONTAINERS_REGISTRIES_CONF": str(conf),
        # only chroot isolation builds here (no runc-capable kernel features); `podman run` does not work
        "BUILDAH_ISOLATION": "chroot",
    }
    log = workdir / "engine.log"
    process = _spawn("engine", command, log, env)
    try:
        _wait(f"podman service at {docker_host}", lambda: engine_ready(docker_host), process, log, timeout)
    except ServiceError:
        _terminate_child(process)
        raise
    return Engine(docker_host), Process("engine", process.pid, str(sock), log, process)


# --- stopping --------------------------------------------------------------------------------------------


def _terminate_child(process: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=15)


def _is_ours(process: Process) -> bool:
    try:
        cmdline = Path(f"/proc/{process.pid}/cmdline").read_bytes().split(b"\0")
        state = Path(f"/proc/{process.pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z" and any(process.marker.encode() in part for part in cmdline)


def stop_process(process: Process, timeout: float = 15.0) -> None:
    """Stop a service started by an earlier command, by its recorded pid, if it is still that service."""
    if process.handle is not None:
        if process.handle.poll() is None:
            _terminate_child(process.handle)
        return
    if not _is_ours(process):
        return
    for sig in (signal.SIGTERM, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, sig)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not _is_ours(process):
                return
            time.sleep(0.1)
    raise ServiceError(f"{process.name} (pid {process.pid}) did not stop")


# --- a pair of services, for the fixtures and the CLI ----------------------------------------------------


@dataclass
class Services:
    registry: Registry
    engine: Engine
    processes: list[Process]
    workdir: Path

    def env(self) -> dict[str, str]:
        return {
            ENV_REGISTRY: self.registry.host,
            ENV_REGISTRY_STORAGE: str(self.registry.storage_dir),
            ENV_REGISTRY_CONFIG: str(self.registry.config_path),
            ENV_DOCKER_HOST: self.engine.docker_host,
        }

    def stop(self) -> None:
        # engine first: it may be talking to the registry
        errors = []
        for process in reversed(self.processes):
            try:
                stop_process(process)
            except ServiceError as exc:
                errors.append(str(exc))
        shutil.rmtree(self.workdir, ignore_errors=True)
        if errors:
            raise ServiceError("; ".join(errors))


def start_services(workdir: Path | None = None, port: int | None = None) -> Services:
    # unix socket paths are limited to ~108 bytes: keep the work directory short, under /tmp
    workdir = workdir or Path(tempfile.mkdtemp(prefix="charon-services-"))
    registry, registry_process = start_registry(workdir, port)
    try:
        engine, engine_process = start_engine(workdir, [registry.host])
    except ServiceError:
        stop_process(registry_process)
        raise
    return Services(registry, engine, [registry_process, engine_process], workdir)


@contextlib.contextmanager
def running_registry(credentials: tuple[str, str] | None = None) -> Iterator[Registry]:
    """A registry of its own for one test (e.g. one that requires basic auth, or one to garbage-collect)."""
    workdir = Path(tempfile.mkdtemp(prefix="charon-registry-"))
    registry, process = start_registry(workdir, credentials=credentials)
    try:
        yield registry
    finally:
        stop_process(process)
        shutil.rmtree(workdir, ignore_errors=True)


@contextlib.contextmanager
def running_engine(insecure_registries: list[str]) -> Iterator[Engine]:
    workdir = Path(tempfile.mkdtemp(prefix="charon-engine-"))
    engine, process = start_engine(workdir, insecure_registries)
    try:
        yield engine
    finally:
        stop_process(process)
        shutil.rmtree(workdir, ignore_errors=True)


def registry_from_env(env: Mapping[str, str] | None = None) -> Registry | None:
    env = os.environ if env is None else env
    host = env.get(ENV_REGISTRY, "").strip()
    if not host:
        return None
    storage = env.get(ENV_REGISTRY_STORAGE, "").strip()
    config = env.get(ENV_REGISTRY_CONFIG, "").strip()
    return Registry(host, Path(storage) if storage else None, Path(config) if config else None)


def engine_from_env(env: Mapping[str, str] | None = None) -> Engine | None:
    env = os.environ if env is None else env
    docker_host = env.get(ENV_DOCKER_HOST, "").strip()
    return Engine(docker_host) if docker_host else None


# --- command line: `.ci/services start|stop|status` -------------------------------------------------------


def _state_files(state_dir: Path) -> tuple[Path, Path]:
    return state_dir / "services.env", state_dir / "services.json"


def _load_state(state_dir: Path) -> Services | None:
    _, state_json = _state_files(state_dir)
    if not state_json.exists():
        return None
    data = json.loads(state_json.read_text())
    return Services(
        registry=Registry(data["registry"], Path(data["storage"]), Path(data["config"])),
        engine=Engine(data["docker_host"]),
        processes=[Process(p["name"], p["pid"], p["marker"], Path(p["log"])) for p in data["processes"]],
        workdir=Path(data["workdir"]),
    )


def _cli_start(state_dir: Path) -> int:
    previous = _load_state(state_dir)
    if previous is not None:
        if all(_is_ours(p) for p in previous.processes) and registry_ready(previous.registry.host):
            print(f"services already running: registry {previous.registry.host}, engine {previous.engine.docker_host}")
            return 0
        previous.stop()  # leftovers of a run that did not stop them
    port_text = os.environ.get(ENV_REGISTRY_PORT, "").strip()
    services = start_services(port=int(port_text) if port_text else None)
    state_dir.mkdir(parents=True, exist_ok=True)
    env_file, state_json = _state_files(state_dir)
    state_json.write_text(
        json.dumps(
            {
                "registry": services.registry.host,
                "storage": str(services.registry.storage_dir),
                "config": str(services.registry.config_path),
                "docker_host": services.engine.docker_host,
                "workdir": str(services.workdir),
                "processes": [
                    {"name": p.name, "pid": p.pid, "marker": p.marker, "log": str(p.log)} for p in services.processes
                ],
            },
            indent=2,
        )
    )
    env_file.write_text("".join(f"{k}={v}\n" for k, v in services.env().items()))
    print(f"registry {services.registry.host} (storage {services.registry.storage_dir})")
    print(f"engine {services.engine.docker_host}")
    print(f"env written to {env_file}")
    return 0


def _cli_stop(state_dir: Path) -> int:
    services = _load_state(state_dir)
    if services is None:
        print("no services recorded")
        return 0
    services.stop()
    for path in _state_files(state_dir):
        path.unlink(missing_ok=True)
    print("services stopped")
    return 0


def _cli_status(state_dir: Path) -> int:
    services = _load_state(state_dir)
    if services is None:
        print("no services recorded")
        return 1
    registry_ok = registry_ready(services.registry.host)
    engine_ok = engine_ready(services.engine.docker_host)
    print(f"registry {services.registry.host}: {'ready' if registry_ok else 'DOWN'}")
    print(f"engine {services.engine.docker_host}: {'ready' if engine_ok else 'DOWN'}")
    return 0 if registry_ok and engine_ok else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=".ci/services", description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("action", choices=["start", "stop", "status"])
    parser.add_argument("--state-dir", type=Path, default=Path(".ci/state"))
    args = parser.parse_args(argv)
    try:
        return {"start": _cli_start, "stop": _cli_stop, "status": _cli_status}[args.action](args.state_dir)
    except ServiceError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
