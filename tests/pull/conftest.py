"""action-pull-image's world for the whole session: the fault proxy and a podman engine of its own (the
session engine may only talk plain http to the registry itself; this one also to the proxy and to a port
where nothing listens)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import requests

from tests.pull.registry_proxy import RegistryProxy
from tests.pull.world import AUTH, PullWorld
from tests.support import services
from tests.support.images import ImageFactory


@pytest.fixture(scope="session")
def pull_world(registry: services.Registry) -> Iterator[PullWorld]:
    proxy = RegistryProxy(registry.host).start()
    down_host = f"127.0.0.1:{services.free_port()}"
    try:
        with (
            services.running_registry(credentials=AUTH) as auth_registry,
            services.running_engine([registry.host, proxy.host, down_host, auth_registry.host]) as engine,
        ):
            client = engine.client()
            session = requests.Session()
            session.auth = AUTH
            try:
                yield PullWorld(
                    registry, proxy, client, engine.docker_host, ImageFactory(registry.host), down_host,
                    auth_registry, ImageFactory(auth_registry.host, session),
                )  # fmt: skip
            finally:
                client.close()
    except services.ServiceError as exc:
        pytest.fail(f"cannot start the podman engine for the pull tests: {exc}", pytrace=False)
    finally:
        proxy.stop()


@pytest.fixture
def world(pull_world: PullWorld) -> Iterator[PullWorld]:
    pull_world.proxy.clear()
    yield pull_world
    pull_world.proxy.clear()
