"""Container package versions backed by the real loopback registry (distribution 2.8)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import requests

from tests.support.fakegithub import FakeGitHub, Package
from tests.support.fakegithub.fixtures import serve_fake_github
from tests.support.images import ImageFactory
from tests.support.services import Registry

TIMEOUT = 10
LAST_TAGGED = "You cannot delete the last tagged version of a package. You must delete the package instead."
MANIFEST_TYPES = "application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json"


@pytest.fixture
def gh() -> Iterator[FakeGitHub]:
    yield from serve_fake_github()


@pytest.fixture
def package(gh: FakeGitHub, registry: Registry, repository: str) -> Package:
    assert registry.storage_dir is not None, "the registry-backed fake needs the registry's storage directory"
    return gh.add_container_package("wikid82", "charon/app", registry_url=registry.url, repository=repository,
                                    storage_dir=registry.storage_dir)


def client(gh: FakeGitHub) -> requests.Session:
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {gh.token}"
    return session


def versions_url(gh: FakeGitHub) -> str:
    return f"{gh.url}/orgs/wikid82/packages/container/charon%2Fapp/versions"


def list_versions(gh: FakeGitHub, **params: Any) -> list[dict[str, Any]]:
    answer = client(gh).get(versions_url(gh), params={"per_page": 100, **params}, timeout=TIMEOUT)
    assert answer.status_code == 200, answer.text
    return list(answer.json())


def manifest_status(registry: Registry, repository: str, reference: str) -> int:
    return requests.get(f"{registry.url}/v2/{repository}/manifests/{reference}", timeout=TIMEOUT,
                        headers={"Accept": MANIFEST_TYPES}).status_code


def test_every_manifest_is_a_version_with_its_tags(gh: FakeGitHub, package: Package, image_factory: ImageFactory,
                                                    repository: str) -> None:
    single = image_factory.push_image(repository, ["v1.0.0", "latest"])
    index = image_factory.push_index(repository, "sha-abc1234", attestations=True)
    orphan = image_factory.push_image(repository, None)
    listed = list_versions(gh)
    tags = {v["name"]: sorted(v["metadata"]["container"]["tags"]) for v in listed}
    expected_untagged = {m.digest for m in index.manifests} | {orphan.digest}
    assert tags == {single.digest: ["latest", "v1.0.0"], index.digest: ["sha-abc1234"],
                    **{digest: [] for digest in expected_untagged}}
    assert len(index.attestations) == 2 and len(listed) == 2 + 4 + 1
    assert {v["metadata"]["package_type"] for v in listed} == {"container"}
    assert all(v["url"] == f"{versions_url(gh)}/{v['id']}" for v in listed)
    again = {v["name"]: v["id"] for v in list_versions(gh)}
    assert again == {v["name"]: v["id"] for v in listed}  # ids are stable per digest
    one = client(gh).get(f"{versions_url(gh)}/{again[index.digest]}", timeout=TIMEOUT).json()
    assert one["name"] == index.digest and one["metadata"]["container"]["tags"] == ["sha-abc1234"]
    assert gh.violations == []


def test_created_at_is_settable_per_digest_and_orders_the_list(gh: FakeGitHub, package: Package,
                                                                image_factory: ImageFactory, repository: str) -> None:
    old = image_factory.push_image(repository, "old")
    new = image_factory.push_image(repository, "new")
    package.set_version(old.digest, created_at="2023-01-01T00:00:00Z")
    package.set_version(new.digest, created_at="2024-06-01T12:00:00Z", updated_at="2024-06-02T00:00:00Z")
    image_factory.tag(old, "retagged")  # re-tagging an old digest does not make it young
    listed = list_versions(gh)
    assert [v["name"] for v in listed] == [new.digest, old.digest]
    assert listed[1]["created_at"] == "2023-01-01T00:00:00Z"
    assert sorted(listed[1]["metadata"]["container"]["tags"]) == ["old", "retagged"]
    assert listed[0]["updated_at"] == "2024-06-02T00:00:00Z"


def test_delete_removes_the_manifest_from_the_registry(gh: FakeGitHub, package: Package, registry: Registry,
                                                       image_factory: ImageFactory, repository: str) -> None:
    keep = image_factory.push_image(repository, "keep")
    gone = image_factory.push_image(repository, "gone")
    orphan = image_factory.push_image(repository, None)
    ids = {v["name"]: v["id"] for v in list_versions(gh)}
    session = client(gh)
    for digest in (gone.digest, orphan.digest):
        assert session.delete(f"{versions_url(gh)}/{ids[digest]}", timeout=TIMEOUT).status_code == 204
        assert manifest_status(registry, repository, digest) == 404
    assert manifest_status(registry, repository, "gone") == 404  # its tag went with it
    assert manifest_status(registry, repository, "keep") == 200
    assert [v["name"] for v in list_versions(gh)] == [keep.digest]
    deleted = list_versions(gh, state="deleted")
    assert {v["name"] for v in deleted} == {gone.digest, orphan.digest}
    assert all("deleted_at" in v for v in deleted)
    again = session.delete(f"{versions_url(gh)}/{ids[gone.digest]}", timeout=TIMEOUT)
    assert again.status_code == 404
    assert session.delete(f"{versions_url(gh)}/999", timeout=TIMEOUT).status_code == 404
    assert gh.count("DELETE", status=204) == 2


def test_githubs_two_refusals(gh: FakeGitHub, package: Package, registry: Registry, image_factory: ImageFactory,
                              repository: str) -> None:
    index = image_factory.push_index(repository, "main")
    ids = {v["name"]: v["id"] for v in list_versions(gh)}
    session = client(gh)
    last = session.delete(f"{versions_url(gh)}/{ids[index.digest]}", timeout=TIMEOUT)
    assert last.status_code == 400 and last.json()["message"] == LAST_TAGGED
    child = index.children[0].digest
    package.set_version(child, downloads=5001)
    popular = session.delete(f"{versions_url(gh)}/{ids[child]}", timeout=TIMEOUT)
    assert popular.status_code == 400 and "5000 downloads" in popular.json()["message"]
    assert manifest_status(registry, repository, child) == 200
    package.visibility = "private"  # the download rule is for public versions only
    assert session.delete(f"{versions_url(gh)}/{ids[child]}", timeout=TIMEOUT).status_code == 204
    assert manifest_status(registry, repository, child) == 404
    assert manifest_status(registry, repository, index.digest) == 200
    assert gh.violations == []
