"""The loopback services and the image factory: real images, a real engine, and what the registry does.

These pin behaviour other tests build on: the engine pulls what the factory pushes (both platforms, with
the revision label), the registry deletes manifests by digest only and takes their tags with them, and a
deleted platform manifest breaks pulls of the index that still lists it (as on GHCR).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.support import services
from tests.support.images import ImageFactory, PushError, pull, save_image_archive

REPO_ROOT = Path(__file__).resolve().parents[1]
REVISION = "0123456789abcdef0123456789abcdef01234567"


@pytest.mark.services
def test_registry_answers(registry: services.Registry) -> None:
    answer = requests.get(f"{registry.url}/v2/", timeout=10)
    assert answer.status_code == 200
    assert answer.headers["Docker-Distribution-Api-Version"] == "registry/2.0"


@pytest.mark.services
def test_engine_answers(docker_client: Any) -> None:
    assert docker_client.ping()
    assert "Podman Engine" in [c["Name"] for c in docker_client.version()["Components"]]


@pytest.mark.services
@pytest.mark.parametrize("style", ["oci", "docker"])
def test_engine_pulls_both_platforms_of_a_pushed_index(
    docker_client: Any, image_factory: ImageFactory, repository: str, style: str
) -> None:
    pushed = image_factory.push_index(repository, "sha-0123456", revision=REVISION, attestations=True, style=style)  # type: ignore[arg-type]
    ids = {}
    for platform in ("linux/amd64", "linux/arm64"):
        image = pull(docker_client, pushed.tagged("sha-0123456"), platform=platform)
        assert image.attrs["Architecture"] == platform.split("/")[1]
        assert image.attrs["Os"] == "linux"
        assert image.labels["org.opencontainers.image.revision"] == REVISION
        ids[platform] = image.id
    # each platform is its own image, with the config the factory pushed for it
    assert ids == {c.platform: c.config.digest for c in pushed.children}


@pytest.mark.services
def test_engine_pulls_a_single_image_by_digest_and_reads_its_label(
    docker_client: Any, image_factory: ImageFactory, repository: str
) -> None:
    pushed = image_factory.push_image(repository, None, platform="linux/arm64", revision=REVISION)  # untagged
    image = pull(docker_client, pushed.reference)
    assert image.id == pushed.config.digest
    assert image.labels == {"org.opencontainers.image.revision": REVISION}


@pytest.mark.services
def test_saved_archive_loads_back(
    registry: services.Registry, docker_client: Any, image_factory: ImageFactory, repository: str, tmp_path: Path
) -> None:
    pushed = image_factory.push_image(repository, ["pr-9-0123456", "latest"], revision=REVISION)
    reference = pushed.tagged("pr-9-0123456")
    pull(docker_client, reference)
    assert pull(docker_client, f"{registry.host}/{repository}").id == pushed.config.digest  # implicit :latest
    archive = save_image_archive(docker_client, reference, tmp_path / "charon-image.tar")
    with tarfile.open(archive) as tar:  # docker-archive: manifest.json names the image and its config
        member = tar.extractfile("manifest.json")
        assert member is not None
        (entry,) = json.load(member)
    assert entry["RepoTags"] == [reference]
    assert entry["Config"].removesuffix(".json").rsplit("/", 1)[-1] == pushed.config.digest.split(":", 1)[1]
    docker_client.images.remove(reference, force=True)
    with archive.open("rb") as data:  # a file, not bytes (docker-py#687)
        (loaded,) = docker_client.images.load(data)
    assert loaded.id == pushed.config.digest
    assert reference in loaded.tags
    assert docker_client.images.get(reference).labels["org.opencontainers.image.revision"] == REVISION


@pytest.mark.services
def test_registry_deletes_by_digest_and_tags_go_with_it(
    registry: services.Registry, image_factory: ImageFactory, repository: str
) -> None:
    image = image_factory.push_image(repository, ["pr-1-0123456", "latest"])
    base = f"{registry.url}/v2/{repository}/manifests"
    by_tag = requests.delete(f"{base}/pr-1-0123456", timeout=10)
    # distribution 2.8 reads a tag there as a malformed digest; ghcr.io answers 405
    assert (by_tag.status_code, by_tag.json()["errors"][0]["code"]) == (400, "DIGEST_INVALID")
    assert requests.delete(f"{base}/{image.digest}", timeout=10).status_code == 202
    for reference in ("pr-1-0123456", "latest", image.digest):
        gone = requests.get(f"{base}/{reference}", headers={"Accept": image.media_type}, timeout=10)
        assert (gone.status_code, gone.json()["errors"][0]["code"]) == (404, "MANIFEST_UNKNOWN")
    # the repository is still known, with no tags: `"tags": null` (the client reads that as an empty list)
    assert requests.get(f"{registry.url}/v2/{repository}/tags/list", timeout=10).json() == {
        "name": repository,
        "tags": None,
    }
    assert image.digest not in registry.stored_manifests(repository)
    # blobs stay until garbage collection
    assert requests.head(f"{registry.url}/v2/{repository}/blobs/{image.config.digest}", timeout=10).status_code == 200


@pytest.mark.services
def test_storage_lists_untagged_manifests_too(
    registry: services.Registry, image_factory: ImageFactory, repository: str
) -> None:
    index = image_factory.push_index(repository, "sha-1234567", attestations=True)
    orphan = image_factory.push_image(repository, None)
    stored = registry.stored_manifests(repository)
    assert set(stored) == {index.digest, orphan.digest, *(m.digest for m in index.manifests)}
    assert stored[orphan.digest] >= stored[index.digest]  # push times
    assert repository in registry.stored_repositories()


@pytest.mark.services
def test_tag_list_ignores_page_size(registry: services.Registry, image_factory: ImageFactory, repository: str) -> None:
    # distribution 2.8 has no tag pagination: `n` is ignored and no Link comes back (the client's paging is
    # tested against a fake in test_registry.py)
    image_factory.push_image(repository, [f"t{i}" for i in range(5)])
    answer = requests.get(f"{registry.url}/v2/{repository}/tags/list?n=2", timeout=10)
    assert sorted(answer.json()["tags"]) == [f"t{i}" for i in range(5)]
    assert "Link" not in answer.headers


@pytest.mark.services
def test_deleted_platform_manifest_breaks_pulls_of_its_index(
    registry: services.Registry, docker_client: Any, image_factory: ImageFactory, repository: str
) -> None:
    pushed = image_factory.push_index(repository, "sha-7654321", revision=REVISION)
    registry.client().delete_manifest(repository, pushed.child("linux/arm64").digest)
    # the index itself is still there and still lists the deleted child
    assert registry.client().get_manifest(repository, "sha-7654321").digest == pushed.digest
    with pytest.raises(PushError, match="manifest unknown"):
        pull(docker_client, pushed.tagged("sha-7654321"), platform="linux/arm64")
    assert pull(docker_client, pushed.tagged("sha-7654321"), platform="linux/amd64").attrs["Architecture"] == "amd64"


def test_garbage_collection_frees_what_the_client_predicts(tmp_path: Path) -> None:
    # a registry of its own: collecting garbage in the shared one would race with other tests' pushes
    with services.running_registry() as own:
        factory = ImageFactory(own.host)
        shared = {"usr/share/base": b"s" * 4096}
        kept = factory.push_image("gc/app", "kept", base_files=shared)
        dropped = factory.push_index("gc/app", "dropped", base_files=shared, attestations=True)
        client = own.client()
        predicted = client.size("gc/app", "dropped", already_counted=client.size("gc/app", "kept").digests)
        before = own.blob_bytes_on_disk()
        for digest in (dropped.digest, *(m.digest for m in dropped.manifests)):
            client.delete_manifest("gc/app", digest)
        own.garbage_collect()
        freed = before - own.blob_bytes_on_disk()
        # the registry keeps manifests as blobs too, so what it frees is blobs and manifests, shared base excluded
        assert freed == predicted.new_bytes
        assert freed == dropped.total_bytes - kept.layers[0].size
        assert client.get_manifest("gc/app", "kept").digest == kept.digest


def test_a_port_in_use_is_a_clear_start_failure(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(services.ServiceError, match="address already in use"):
            services.start_registry(tmp_path, port=port, timeout=20)


def test_stop_only_touches_the_process_it_recorded(tmp_path: Path) -> None:
    marker = tmp_path / "marker-file"
    sleeper = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(60)", str(marker)], start_new_session=True
    )
    try:
        stranger = services.Process("registry", sleeper.pid, str(tmp_path / "another-config.yml"), tmp_path / "log")
        services.stop_process(stranger)  # a recycled pid: its command line does not name our config
        assert sleeper.poll() is None
        services.stop_process(services.Process("registry", sleeper.pid, str(marker), tmp_path / "log"))
        assert sleeper.wait(timeout=10) == -15
    finally:
        if sleeper.poll() is None:
            sleeper.kill()
            sleeper.wait()


def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tests.support.services", *args],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **(env or {})},
        check=False,
    )


def test_ci_services_start_status_stop(tmp_path: Path) -> None:
    state = tmp_path / "state"
    port = services.free_port()
    started = _cli("start", "--state-dir", str(state), env={services.ENV_REGISTRY_PORT: str(port)})
    try:
        assert started.returncode == 0, started.stderr
        env = dict(line.split("=", 1) for line in (state / "services.env").read_text().splitlines())
        assert env[services.ENV_REGISTRY] == f"127.0.0.1:{port}"
        assert Path(env[services.ENV_REGISTRY_STORAGE]).is_dir()
        assert env[services.ENV_DOCKER_HOST].startswith("unix:///")
        assert services.registry_ready(env[services.ENV_REGISTRY])
        assert services.engine_ready(env[services.ENV_DOCKER_HOST])
        recorded = json.loads((state / "services.json").read_text())
        assert _cli("status", "--state-dir", str(state)).returncode == 0
        again = _cli("start", "--state-dir", str(state))
        assert "already running" in again.stdout
        assert json.loads((state / "services.json").read_text()) == recorded
    finally:
        stopped = _cli("stop", "--state-dir", str(state))
    assert stopped.returncode == 0, stopped.stderr
    assert not services.registry_ready(f"127.0.0.1:{port}")
    assert not services.engine_ready(env[services.ENV_DOCKER_HOST])
    assert not Path(recorded["workdir"]).exists()
    assert not (state / "services.env").exists()
    assert _cli("status", "--state-dir", str(state)).returncode == 1


def test_an_unreachable_configured_registry_fails_the_fixture() -> None:
    # the fixture must fail, not skip, when the services it was told about are not there
    dead = f"127.0.0.1:{services.free_port()}"
    with tempfile.TemporaryDirectory() as cache:
        done = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"{__file__}::test_registry_answers"],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=120,
            env={**os.environ, services.ENV_REGISTRY: dead, "PYTHONDONTWRITEBYTECODE": "1", "TMPDIR": cache},
            check=False,
        )
    assert done.returncode == 1, done.stdout
    assert f"{services.ENV_REGISTRY}={dead} does not answer GET /v2/ with 200" in done.stdout
    assert "1 error" in done.stdout and "skipped" not in done.stdout
