"""Session fixtures for the real loopback services (see tests/support/services.py).

With `.ci/state/services.env` loaded (what `.ci/test` does), the fixtures use the services `.ci/services`
started; otherwise they start their own for the session. A service that cannot be reached or started
fails the tests that need it: nothing is skipped.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from tests.support import services
from tests.support.images import ImageFactory

pytest_plugins = ["tests.support.composite_fixtures", "tests.support.fakegithub.fixtures"]


@pytest.fixture(scope="session")
def registry() -> Iterator[services.Registry]:
    """The loopback OCI registry: `.host` (127.0.0.1:PORT), `.url`, `.storage_dir`, `.client()`."""
    external = services.registry_from_env()
    if external is not None:
        if not services.registry_ready(external.host):
            pytest.fail(f"{services.ENV_REGISTRY}={external.host} does not answer GET /v2/ with 200", pytrace=False)
        yield external
        return
    try:
        with services.running_registry() as own:
            yield own
    except services.ServiceError as exc:
        pytest.fail(f"cannot start the test registry: {exc}", pytrace=False)


@pytest.fixture(scope="session")
def docker_client(registry: services.Registry) -> Iterator[Any]:
    """A docker.DockerClient for the podman Docker-API engine, which may pull from `registry` over http."""
    external = services.engine_from_env()
    if external is not None:
        if not services.engine_ready(external.docker_host):
            pytest.fail(f"{services.ENV_DOCKER_HOST}={external.docker_host} does not answer /_ping", pytrace=False)
        client = external.client()
        yield client
        client.close()
        return
    try:
        with services.running_engine([registry.host]) as engine:
            client = engine.client()
            yield client
            client.close()
    except services.ServiceError as exc:
        pytest.fail(f"cannot start the podman Docker-API engine: {exc}", pytrace=False)


@pytest.fixture(scope="session")
def image_factory(registry: services.Registry) -> ImageFactory:
    return ImageFactory(registry.host)


@pytest.fixture
def repository(request: pytest.FixtureRequest) -> str:
    """A repository name no other test uses: `charon-test/<test name>-<random>`."""
    slug = re.sub(r"[^a-z0-9]+", "-", request.node.name.lower()).strip("-")[:48].strip("-") or "test"
    return f"charon-test/{slug}-{uuid.uuid4().hex[:8]}"
