"""The pure parts of action-pull-image, table-driven: which engine failures are worth a retry, the backoff
under a deadline, the revision and digest proofs, the progress lines, and the input parsers."""

from __future__ import annotations

import random

import pytest

from charon_ci import gha
from charon_ci.pull import settings, verify
from charon_ci.pull.engine import is_transient
from charon_ci.pull.progress import PullProgress
from charon_ci.pull.retry import Backoff, Deadline

SHA = "5a6b7c8d9e0f1a2b3c4d5e6f7a8b9c0d1e2f3a4b"

# Messages as docker and podman print them (docker/cli issues, containers/image sources, GHCR and Hub answers).
ENGINE_MESSAGES = [
    ("manifest for ghcr.io/o/app:pr-1-abc1234 not found: manifest unknown: manifest unknown", False),
    ("initializing source docker://127.0.0.1:5000/o/app:x: reading manifest x in 127.0.0.1:5000/o/app: "
     "manifest unknown", False),
    ("pull access denied for o/app, repository does not exist or may require 'docker login': denied: requested "
     "access to the resource is denied", False),
    ("Head \"https://ghcr.io/v2/o/app/manifests/x\": unauthorized", False),
    ("unauthorized: authentication required", False),
    ("no matching manifest for linux/arm64/v8 in the manifest list entries", False),
    ("toomanyrequests: You have reached your pull rate limit. You may increase the limit by authenticating",
     True),
    ("Get \"https://ghcr.io/v2/\": net/http: TLS handshake timeout", True),
    ("Get \"https://ghcr.io/v2/\": net/http: request canceled (Client.Timeout exceeded while awaiting headers)",
     True),
    ("read tcp 10.1.0.4:5678->140.82.1.1:443: read: connection reset by peer", True),
    ("dial tcp 127.0.0.1:1: connect: connection refused", True),
    ("received unexpected HTTP status: 503 Service Unavailable", True),
    ("received unexpected HTTP status: 500 Internal Server Error", True),
    ("reading blob sha256:ab: Get \"https://pkg-containers.githubusercontent.com/...\": unexpected EOF", True),
    ("something no one has seen before", True),  # unknown: retried under the deadline, then the artifact
    ("reading manifest x in 127.0.0.1:5000/o/app: manifest unknown", False),  # a port with 500 in it is no 5xx
]  # fmt: skip


@pytest.mark.parametrize(("message", "transient"), ENGINE_MESSAGES)
def test_engine_failures_are_sorted(message: str, transient: bool) -> None:
    assert is_transient(message) is transient


def test_status_decides_when_the_message_does_not() -> None:
    assert is_transient("something", 404) is False
    assert is_transient("something", 500) is True


def test_full_jitter_stays_under_its_exponential_ceiling_and_spreads() -> None:
    backoff = Backoff(base=1.0, cap=8.0)
    rng = random.Random(7)  # noqa: S311 - jitter, not cryptography
    assert [backoff.ceiling(n) for n in range(1, 7)] == [1.0, 2.0, 4.0, 8.0, 8.0, 8.0]
    delays = [backoff.delay(4, rng) for _ in range(2000)]
    assert all(0.0 <= d <= 8.0 for d in delays)
    assert min(delays) < 0.5 and max(delays) > 7.5  # full jitter: the whole range, not a fixed wait


def test_deadline_cuts_the_wait_and_then_says_stop() -> None:
    now = [100.0]
    deadline = Deadline(10.0, clock=lambda: now[0])
    rng = random.Random(1)  # noqa: S311
    assert deadline.wait_before_retry(1, Backoff(base=1.0), rng) is not None
    now[0] = 109.5
    wait = deadline.wait_before_retry(6, Backoff(base=1.0, cap=30.0), random.Random(3))  # noqa: S311
    assert wait is not None and wait <= 0.5
    now[0] = 110.0
    assert deadline.expired and deadline.wait_before_retry(1, Backoff(), rng) is None
    assert Deadline(0.0).wait_before_retry(1, Backoff(), rng) is None  # registry-timeout 0: one attempt


@pytest.mark.parametrize(
    ("label", "expected", "status"),
    [
        (SHA, SHA, "match"),
        (SHA.upper(), SHA, "match"),
        (SHA[:7], SHA, "match"),  # a build that labels the short sha
        (SHA, SHA[:7], "match"),  # an expected-revision of 7
        (SHA[:6], SHA, "mismatch"),  # shorter than 7 proves nothing
        ("0" * 40, SHA, "mismatch"),
        (SHA[:7] + "zz", SHA, "mismatch"),
        ("", SHA, "missing"),
        (None, SHA, "missing"),
    ],
)
def test_revision_proof(label: str | None, expected: str, status: str) -> None:
    labels = {} if label is None else {verify.REVISION_LABEL: label}
    assert verify.check_revision(labels, expected).status == status


def test_a_hostile_label_is_shown_inert() -> None:
    proof = verify.check_revision({verify.REVISION_LABEL: "::error::x\n%0A[link](http://x)"}, SHA)
    text = verify.describe(proof, "the image", "input expected-revision")
    assert "::" not in text and "\n" not in text and "](" not in text


def test_digest_proof() -> None:
    digest = "sha256:" + "a" * 64
    assert verify.check_digest([f"ghcr.io/o/app@{digest}"], digest)
    assert not verify.check_digest([f"ghcr.io/o/app@sha256:{'b' * 64}"], digest)
    assert not verify.check_digest([], digest)
    assert not verify.check_digest(["x@not-a-digest"], "not-a-digest")


def test_progress_is_one_line_per_finished_layer_and_a_total_every_few_seconds() -> None:
    lines: list[str] = []
    now = [0.0]
    progress = PullProgress("ghcr.io/o/app:x", emit=lines.append, clock=lambda: now[0], interval=5.0)
    layers = [f"{n:012x}" for n in range(3)]
    for layer in layers:
        progress.event({"status": "Pulling fs layer", "id": layer, "progressDetail": {}})
    for step in range(1200):  # docker's per-chunk events: never a line each
        now[0] += 0.01
        progress.event({"status": "Downloading", "id": layers[0], "progressDetail": {"current": step, "total": 1199}})
    for layer in layers:  # docker says Download complete, then Pull complete: the layer counts once
        progress.event({"status": "Download complete", "id": layer, "progressDetail": {}})
        progress.event({"status": "Pull complete", "id": layer, "progressDetail": {}})
    progress.event({"status": "Already exists", "id": layers[0], "progressDetail": {}})
    progress.event({"status": "Digest: sha256:" + "a" * 64})
    total = progress.done()
    layer_lines = [line for line in lines if line.startswith("layer ")]
    assert len(layer_lines) == 3
    assert sum(line.startswith("pulling ") for line in lines) == 3  # two periodic totals in 12 s, and the last
    assert "3 of 3 layers done" in total


def test_progress_ignores_ids_that_are_not_ids() -> None:
    lines: list[str] = []
    progress = PullProgress("x", emit=lines.append)
    progress.event({"status": "Pull complete", "id": "::error::owned"})
    assert lines == []


@pytest.mark.parametrize(
    ("text", "name", "tag", "digest", "host", "repository"),
    [
        ("ghcr.io/o/app:pr-1-abc1234", "ghcr.io/o/app", "pr-1-abc1234", None, "ghcr.io", "o/app"),
        ("ghcr.io/o/app@sha256:" + "a" * 64, "ghcr.io/o/app", None, "sha256:" + "a" * 64, "ghcr.io", "o/app"),
        ("127.0.0.1:5000/o/app:v1@sha256:" + "b" * 64, "127.0.0.1:5000/o/app", "v1", "sha256:" + "b" * 64,
         "127.0.0.1:5000", "o/app"),
        ("charon:latest", "charon", "latest", None, "docker.io", "library/charon"),
        ("wikid82/charon:dev", "wikid82/charon", "dev", None, "docker.io", "wikid82/charon"),
    ],
)  # fmt: skip
def test_image_references(text: str, name: str, tag: str | None, digest: str | None, host: str,
                          repository: str) -> None:  # fmt: skip
    parsed = settings.parse_image(text, "image")
    assert (parsed.name, parsed.tag, parsed.digest, parsed.host, parsed.repository) == (
        name, tag, digest, host, repository,
    )  # fmt: skip


@pytest.mark.parametrize(
    "text",
    ["ghcr.io/o/app", "127.0.0.1:5000/o/app", "ghcr.io/o/App:x", "ghcr.io/o/app:-x", "ghcr.io/o/app@sha256:12",
     "ghcr.io/o/app:x y", "ghcr.io/o/app:$(id)"],
)  # fmt: skip
def test_bad_image_references(text: str) -> None:
    with pytest.raises(gha.InputError):
        settings.parse_image(text, "image")


@pytest.mark.parametrize(
    ("text", "seconds"), [("0", 0), ("90", 90), ("90s", 90), ("5m", 300), ("1m30s", 90), ("1h", 3600)]
)
def test_timeouts(text: str, seconds: float) -> None:
    assert settings.parse_timeout(text, "registry-timeout") == seconds


@pytest.mark.parametrize("text", ["", "-1", "1.5", "5 m", "2d", "25h", "m", "١٢"])
def test_bad_timeouts(text: str) -> None:
    with pytest.raises(gha.InputError):
        settings.parse_timeout(text, "registry-timeout")


@pytest.mark.parametrize(
    ("text", "size"), [("1024", 1024), ("512MiB", 512 * 1024**2), ("4GiB", 4 * 1024**3), ("2GB", 2 * 10**9),
                       ("10 kib", 10240)],
)  # fmt: skip
def test_sizes(text: str, size: int) -> None:
    assert settings.parse_size(text, "max-artifact-size") == size


@pytest.mark.parametrize("text", ["0", "1.5GiB", "4G", "lots", "-5", "²"])
def test_bad_sizes(text: str) -> None:
    with pytest.raises(gha.InputError):
        settings.parse_size(text, "max-artifact-size")


def test_local_tag_gets_latest_when_it_has_no_tag() -> None:
    assert settings.parse_local_tag("charon") == "charon:latest"
    assert settings.parse_local_tag("charon:local") == "charon:local"
    for bad in ("Charon:local", "charon@sha256:" + "a" * 64, "charon:", "charon:lo cal"):
        with pytest.raises(gha.InputError):
            settings.parse_local_tag(bad)


def test_registry_credentials_inputs_then_the_job_token_on_ghcr_then_docker_config() -> None:
    from dataclasses import replace
    from pathlib import Path

    from charon_ci.pull.sources import registry_auth

    base = settings.PullSettings(
        image=None, image_name=settings.parse_image_name("ghcr.io/o/app", "image-name"), expected_digest=None,
        expected_revision=None, on_mismatch="fail", local_tag=None, registry_timeout=1.0, registry_username="",
        registry_password="", github_token="ghs_job", run_id=None, artifact_name=None, artifact_file=None,
        max_artifact_size=1, allowed_conclusions=frozenset({"success"}), main_branch="main",
        dev_branch="development", nightly=False, docker_host="", runner_temp=Path("/tmp"), actor="octocat",
    )  # fmt: skip
    explicit = replace(base, registry_username="me", registry_password="s3cret-pat")
    assert registry_auth(explicit, "ghcr.io")[0] == {"username": "me", "password": "s3cret-pat"}
    assert registry_auth(base, "ghcr.io")[0] == {"username": "octocat", "password": "ghs_job"}
    assert registry_auth(base, "docker.io")[0] is None  # the job token never goes to another registry
    assert "ghs_job" not in repr(base) and "s3cret-pat" not in repr(explicit)
