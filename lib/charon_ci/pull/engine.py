"""The job's own Docker engine, through the Docker SDK: pull (errors inside a 200 stream are errors), inspect,
tag, untag. `DOCKER_HOST` (and `DOCKER_TLS_VERIFY`/`DOCKER_CERT_PATH`) or `/var/run/docker.sock`.

Registry failures are sorted into transient ones (timeouts, resets, TLS, 5xx, 429 `toomanyrequests`), worth a
retry, and permanent ones (`manifest unknown`, not found, `denied`, unauthorized), which send the caller to the
artifact at once. The engine reports a failed pull in one of two ways: an HTTP error before the stream
(docker), or an `{"error": ...}` event inside a 200 stream (docker and podman), which the SDK does not raise.
"""

from __future__ import annotations

import platform as platform_module
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from charon_ci import gha, oci
from charon_ci.pull.progress import PullProgress
from charon_ci.pull.settings import ImageReference

DEFAULT_DOCKER_HOST = "unix:///var/run/docker.sock"
# Reads from the engine (inspect, tag, load) may wait this long; pulls stream without a read timeout.
ENGINE_TIMEOUT = 600

# `uname -m` -> (GOARCH, variant), as the engine names its own platform.
_MACHINES: dict[str, tuple[str, str | None]] = {
    "x86_64": ("amd64", None), "amd64": ("amd64", None), "aarch64": ("arm64", None), "arm64": ("arm64", None),
    "armv7l": ("arm", "v7"), "armv6l": ("arm", "v6"), "ppc64le": ("ppc64le", None), "s390x": ("s390x", None),
    "riscv64": ("riscv64", None),
}  # fmt: skip
# Checked first: a message naming a passing condition is transient even if it also says "not found".
_TRANSIENT = re.compile(
    r"toomanyrequests|too many requests|\b429\b|timeout|timed out|deadline exceeded|connection reset|"
    r"connection refused|broken pipe|tls handshake|unexpected eof|\beof\b|i/o timeout|no such host|"
    r"temporary failure|network is unreachable|internal server error|bad gateway|service unavailable|"
    r"gateway timeout|status:? 5\d\d\b|\b5\d\d (?:internal|bad|service|gateway)",
    re.IGNORECASE,
)
_PERMANENT = re.compile(
    r"manifest unknown|name unknown|not found|denied|unauthorized|authentication required|does not exist|"
    r"no matching manifest|no image found in manifest list|invalid reference format|repository name must|"
    r"unsupported|forbidden|manifest invalid|digest did not match|manifest digest",
    re.IGNORECASE,
)


class EngineUnavailable(gha.ActionFailure):
    def __init__(self, docker_host: str, reason: str) -> None:
        super().__init__(
            "Docker engine not reachable",
            f"The Docker engine at {docker_host} did not answer ({reason}). action-pull-image uses the job's own "
            "engine: DOCKER_HOST, else /var/run/docker.sock.",
        )


@dataclass
class PullFailed(Exception):
    """A pull the engine could not do; `transient` says whether trying again may help."""

    message: str
    transient: bool

    def __str__(self) -> str:
        return self.message


def is_transient(message: str, status: int | None = None) -> bool:
    """Whether a failed pull is worth retrying, judged by the engine's message (and HTTP status, if any).
    Unknown failures count as transient: the deadline bounds them, and the artifact comes after."""
    if _TRANSIENT.search(message):
        return True
    if _PERMANENT.search(message):
        return False
    return status not in (401, 403, 404)


def _shown(message: str, limit: int = 400) -> str:
    """Engine text for a log line: one line, cut."""
    flat = " ".join(str(message).split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


class Engine:
    """A Docker SDK `APIClient` and what action-pull-image does with it."""

    def __init__(self, api: Any, docker_host: str) -> None:
        self.api = api
        self.docker_host = docker_host
        self.os_type = "linux"

    @classmethod
    def connect(cls, env: Mapping[str, str]) -> Engine:
        """A client speaking the engine's API version, learnt from `/_ping` (as the docker CLI negotiates):
        `version="auto"` would ask `/version`, which podman answers in seconds."""
        from docker.api.client import APIClient
        from docker.constants import DEFAULT_DOCKER_API_VERSION, MINIMUM_DOCKER_API_VERSION
        from docker.utils import kwargs_from_env, version_lt

        options = kwargs_from_env(environment=dict(env))
        options.setdefault("base_url", DEFAULT_DOCKER_HOST)
        docker_host = str(options["base_url"])
        try:
            probe = APIClient(version=MINIMUM_DOCKER_API_VERSION, timeout=ENGINE_TIMEOUT, **options)
            try:
                answer = probe.get(f"{probe.base_url}/_ping", timeout=30)
            finally:
                probe.close()
            if answer.status_code != 200:
                raise EngineUnavailable(docker_host, f"/_ping answered {answer.status_code}")
            offered = answer.headers.get("Api-Version", "")
            if not re.fullmatch(r"1\.[0-9]{1,3}", offered):
                version = "auto"  # an engine that does not say: ask it the long way
            elif version_lt(DEFAULT_DOCKER_API_VERSION, offered):
                version = DEFAULT_DOCKER_API_VERSION  # newer engines accept older clients
            else:
                version = offered
            api = APIClient(version=version, timeout=ENGINE_TIMEOUT, **options)
        except EngineUnavailable:
            raise
        except Exception as failure:  # the SDK raises DockerException, requests errors, OSError...
            raise EngineUnavailable(docker_host, _shown(f"{type(failure).__name__}: {failure}", 200)) from None
        engine = cls(api, docker_host)
        engine.os_type = answer.headers.get("Ostype", "") or "linux"
        return engine

    def close(self) -> None:
        self.api.close()

    def platform(self) -> oci.Platform:
        """The os/architecture the engine pulls from a multi-platform index: a local engine runs on this
        machine's architecture; a remote one (tcp://, ssh://) is asked."""
        if self.docker_host.startswith(("unix://", "npipe://")):
            machine = platform_module.machine().lower()
            arch = _MACHINES.get(machine)
            if arch is not None:
                return oci.Platform(self.os_type, *arch)
        try:
            version = self.api.version()
        except Exception as failure:  # the SDK raises DockerException, requests errors, OSError...
            raise EngineUnavailable(self.docker_host, _shown(f"{type(failure).__name__}: {failure}", 200)) from None
        return oci.Platform(str(version.get("Os") or "linux"), str(version.get("Arch") or "amd64"))

    def pull(
        self,
        image: ImageReference,
        *,
        auth: Mapping[str, str] | None,
        progress: PullProgress,
    ) -> None:
        """Pull `image` (by digest when it has one); PullFailed on any failure, inside the stream or not."""
        import docker.errors
        import requests

        reference = image.digest or image.tag or "latest"
        try:
            stream: Iterable[Any] = self.api.pull(
                image.name, tag=reference, stream=True, decode=True, auth_config=dict(auth) if auth else None
            )
            for event in stream:
                if not isinstance(event, dict):
                    continue
                error = event.get("error") or (event.get("errorDetail") or {}).get("message")
                if error:
                    text = _shown(str(error))
                    raise PullFailed(text, is_transient(text))
                progress.event(event)
        except docker.errors.APIError as failure:
            text = _shown(str(failure.explanation or failure))
            raise PullFailed(text, is_transient(text, failure.status_code)) from None
        except (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError) as failure:
            raise PullFailed(f"the pull stream broke: {type(failure).__name__}", True) from None

    def inspect(self, reference: str) -> dict[str, Any] | None:
        import docker.errors

        try:
            found: dict[str, Any] = self.api.inspect_image(reference)
        except docker.errors.ImageNotFound:
            return None
        return found

    def tag(self, image_id: str, local_tag: str) -> None:
        repository, _, tag = local_tag.rpartition(":")
        if not self.api.tag(image_id, repository, tag, force=True):
            raise gha.ActionFailure("Cannot tag the image", f"The engine refused to tag {image_id} as {local_tag}.")

    def untag(self, reference: str, *, on_error: Callable[[str], None] = gha.warning) -> bool:
        """Remove one name of an image (the image itself goes only when no other name or container holds it)."""
        import docker.errors

        try:
            self.api.remove_image(reference, noprune=False)
        except docker.errors.ImageNotFound:
            return False
        except docker.errors.APIError as failure:
            on_error(f"Could not remove {reference}: {_shown(str(failure.explanation or failure), 200)}")
            return False
        return True


def labels_of(inspected: Mapping[str, Any]) -> dict[str, str]:
    config = inspected.get("Config")
    labels = config.get("Labels") if isinstance(config, Mapping) else None
    if not isinstance(labels, Mapping):
        return {}
    return {str(key): str(value) for key, value in labels.items()}


def repo_digests(inspected: Mapping[str, Any]) -> list[str]:
    digests = inspected.get("RepoDigests")
    return [str(d) for d in digests] if isinstance(digests, list) else []
