"""fetch_artifact against the fake GitHub: listing (paginated) a run's artifacts, choosing one by name or
glob, refusing what must not be used, downloading through the 302 to the storage host without the token
(the fake fails the test at teardown if a token reaches it), and checking the bytes against the digest."""

from __future__ import annotations

import hashlib
import time
from pathlib import Path
from typing import Any

import pytest

from charon_ci.github import GithubClient
from charon_ci.pull.artifact import ArtifactError, ArtifactQuery, choose_artifact, fetch_artifact
from tests.support.fakegithub import FakeGitHub

REPO = "wikid82/charon"
DAY = 86_400


def client_for(gh: FakeGitHub, token: str | None = None) -> GithubClient:
    return GithubClient(gh.token if token is None else token, api_url=gh.url, sleep=lambda _s: None)


def query(run_id: int, name: str, tmp_path: Path, **overrides: Any) -> ArtifactQuery:
    """A query for REPO's run `run_id`; `overrides` replace any field."""
    fields: dict[str, Any] = {
        "repository": REPO,
        "run_id": run_id,
        "name": name,
        "max_size": 1 << 30,
        "download_dir": tmp_path / "runner-temp",
    }
    fields.update(overrides)
    return ArtifactQuery(**fields)


def downloads(gh: FakeGitHub) -> int:
    return sum(1 for record in gh.storage_requests if record.path.startswith("/artifacts/"))


def leftovers(directory: Path) -> list[Path]:
    return sorted(directory.iterdir()) if directory.exists() else []


def test_downloads_the_named_artifact_through_the_redirect_and_verifies_its_digest(
    fake_github: FakeGitHub, tmp_path: Path
) -> None:
    gh = fake_github
    run = gh.add_run(REPO, head_sha="c" * 40)
    payload = b"PK\x03\x04 pretend zip " * 1000
    gh.add_artifact(run, "image-pr-7", payload)
    gh.add_artifact(run, "sbom", b"other")

    got = fetch_artifact(client_for(gh), query(run.id, "image-pr-7", tmp_path))

    assert got.name == "image-pr-7"
    assert got.path.read_bytes() == payload
    assert got.size == len(payload)
    assert got.digest_verified is True
    assert got.sha256 == hashlib.sha256(payload).hexdigest()
    assert got.verification == f"sha256 {got.sha256} matches the digest GitHub recorded at upload"
    assert got.head_sha == "c" * 40
    assert got.path.parent == tmp_path / "runner-temp"
    # the 302 was followed to the second host, and the token stayed on the API host
    (stored,) = [r for r in gh.storage_requests if r.path.startswith("/artifacts/")]
    assert "authorization" not in stored.headers
    (listing,) = gh.calls("GET", operation="actions/list-workflow-run-artifacts")
    assert listing.query.get("name") == ["image-pr-7"]  # an exact name narrows the listing on GitHub's side


def test_a_glob_finds_the_artifact_across_pages(fake_github: FakeGitHub, tmp_path: Path) -> None:
    gh = fake_github
    run = gh.add_run(REPO)
    for index in range(150):
        gh.add_artifact(run, f"log-{index:03d}", b"log", created_at=time.time() - 1000 + index)
    gh.add_artifact(run, "image-sha-abc1234", b"the image", created_at=time.time() - 5000)

    got = fetch_artifact(client_for(gh), query(run.id, "image-*", tmp_path))

    assert got.path.read_bytes() == b"the image"
    assert gh.count("GET", operation="actions/list-workflow-run-artifacts") == 2  # 151 artifacts, 100 a page


def test_a_glob_matching_two_artifacts_is_refused_by_name(fake_github: FakeGitHub, tmp_path: Path) -> None:
    gh = fake_github
    run = gh.add_run(REPO)
    gh.add_artifact(run, "image-amd64", b"a")
    gh.add_artifact(run, "image-arm64", b"b")

    with pytest.raises(ArtifactError, match=r"matches 2 artifacts .*'image-amd64', 'image-arm64'"):
        fetch_artifact(client_for(gh), query(run.id, "image-*", tmp_path))
    assert downloads(gh) == 0


def test_an_artifact_of_another_run_is_not_used(fake_github: FakeGitHub, tmp_path: Path) -> None:
    gh = fake_github
    ours = gh.add_run(REPO)
    gh.add_artifact(ours, "sbom", b"x")
    other = gh.add_run(REPO)
    gh.add_artifact(other, "image-pr-7", b"someone else's image")

    with pytest.raises(ArtifactError) as refused:
        fetch_artifact(client_for(gh), query(ours.id, "image-pr-7", tmp_path))
    assert str(refused.value) == f"run {ours.id} of {REPO} has no artifact named 'image-pr-7'; it has: 'sbom'."
    assert downloads(gh) == 0


def test_a_listing_whose_artifact_names_another_run_is_refused(fake_github: FakeGitHub, tmp_path: Path) -> None:
    gh = fake_github
    ours = gh.add_run(REPO)
    gh.add_artifact(ours, "image-pr-7", b"x")

    def claim_another_run(body: dict[str, Any]) -> dict[str, Any]:
        for item in body["artifacts"]:
            item["workflow_run"]["id"] = ours.id + 1
        return body

    gh.corrupt("actions/list-workflow-run-artifacts", claim_another_run)
    with pytest.raises(ArtifactError, match=f"under run {ours.id} of {REPO}, but their records say another run made"):
        fetch_artifact(client_for(gh), query(ours.id, "image-pr-7", tmp_path))
    assert downloads(gh) == 0


def test_a_run_without_artifacts_says_so(fake_github: FakeGitHub, tmp_path: Path) -> None:
    gh = fake_github
    run = gh.add_run(REPO)
    with pytest.raises(ArtifactError, match=r"has no artifacts \(the build uploaded none"):
        fetch_artifact(client_for(gh), query(run.id, "image-pr-7", tmp_path))


def test_an_expired_artifact_is_refused_from_the_listing(fake_github: FakeGitHub, tmp_path: Path) -> None:
    gh = fake_github
    run = gh.add_run(REPO)
    gh.add_artifact(
        run, "image-pr-7", b"x", created_at=time.time() - 3 * DAY, expires_at=time.time() - DAY, expired=True
    )

    with pytest.raises(ArtifactError, match=r"'image-pr-7' of run \d+ of wikid82/charon expired on \d{4}-\d\d-\d\d"):
        fetch_artifact(client_for(gh), query(run.id, "image-pr-7", tmp_path))
    assert downloads(gh) == 0
    assert gh.count("GET", operation="actions/download-artifact") == 0


def test_an_artifact_past_its_expiry_time_is_refused_even_before_github_flags_it(
    fake_github: FakeGitHub, tmp_path: Path
) -> None:
    gh = fake_github
    run = gh.add_run(REPO)
    gh.add_artifact(run, "image-pr-7", b"x", created_at=time.time() - 3 * DAY, expires_at=time.time() - 60)

    with pytest.raises(ArtifactError, match="expired on"):
        fetch_artifact(client_for(gh), query(run.id, "image-pr-7", tmp_path))
    assert gh.count("GET", operation="actions/download-artifact") == 0


def test_an_artifact_that_expires_between_listing_and_download_says_410_in_plain_words(
    fake_github: FakeGitHub, tmp_path: Path
) -> None:
    gh = fake_github
    run = gh.add_run(REPO)
    gh.add_artifact(run, "image-pr-7", b"x", expired=True)

    def still_listed_as_valid(body: dict[str, Any]) -> dict[str, Any]:
        for item in body["artifacts"]:
            item["expired"] = False
            item["expires_at"] = "2999-01-01T00:00:00Z"
        return body

    gh.corrupt("actions/list-workflow-run-artifacts", still_listed_as_valid)
    with pytest.raises(ArtifactError, match=r"410 Gone, the artifact has expired .* Re-run the build"):
        fetch_artifact(client_for(gh), query(run.id, "image-pr-7", tmp_path))
    assert gh.count("GET", operation="actions/download-artifact", status=410) == 1
    assert leftovers(tmp_path / "runner-temp") == []


def test_an_artifact_over_max_size_is_refused_before_downloading(fake_github: FakeGitHub, tmp_path: Path) -> None:
    gh = fake_github
    run = gh.add_run(REPO)
    gh.add_artifact(run, "image-pr-7", bytes(4096))

    with pytest.raises(ArtifactError, match=r"is 4096 bytes \(4\.0 KiB\), over max-artifact-size, which is 4095 bytes"):
        fetch_artifact(client_for(gh), query(run.id, "image-pr-7", tmp_path, max_size=4095))
    assert gh.count("GET", operation="actions/download-artifact") == 0


def test_free_disk_is_checked_before_downloading(fake_github: FakeGitHub, tmp_path: Path) -> None:
    gh = fake_github
    run = gh.add_run(REPO)
    gh.add_artifact(run, "image-pr-7", bytes(4096))

    # a reserve larger than any disk: the real free space of tmp_path is read and found short
    with pytest.raises(ArtifactError, match=r"not enough free disk in .*runner-temp for the artifact 'image-pr-7'"):
        fetch_artifact(client_for(gh), query(run.id, "image-pr-7", tmp_path, disk_reserve=1 << 62))
    assert gh.count("GET", operation="actions/download-artifact") == 0


def test_bytes_that_do_not_match_the_recorded_digest_are_refused_and_removed(
    fake_github: FakeGitHub, tmp_path: Path
) -> None:
    gh = fake_github
    run = gh.add_run(REPO)
    gh.add_artifact(run, "image-pr-7", b"what the storage serves")
    recorded = hashlib.sha256(b"what the build uploaded").hexdigest()

    def record_another_digest(body: dict[str, Any]) -> dict[str, Any]:
        for item in body["artifacts"]:
            item["digest"] = f"sha256:{recorded}"
        return body

    gh.corrupt("actions/list-workflow-run-artifacts", record_another_digest)
    with pytest.raises(ArtifactError, match=f"but GitHub recorded sha256:{recorded}; refused"):
        fetch_artifact(client_for(gh), query(run.id, "image-pr-7", tmp_path))
    assert downloads(gh) == 1
    assert leftovers(tmp_path / "runner-temp") == []


def test_a_digest_in_an_unknown_form_is_refused(fake_github: FakeGitHub, tmp_path: Path) -> None:
    gh = fake_github
    run = gh.add_run(REPO)
    gh.add_artifact(run, "image-pr-7", b"x")

    def md5_digest(body: dict[str, Any]) -> dict[str, Any]:
        for item in body["artifacts"]:
            item["digest"] = "md5:" + "0" * 32
        return body

    gh.corrupt("actions/list-workflow-run-artifacts", md5_digest)
    with pytest.raises(ArtifactError, match="not a sha256 digest this action can check"):
        fetch_artifact(client_for(gh), query(run.id, "image-pr-7", tmp_path))
    assert downloads(gh) == 0


def test_an_artifact_without_digest_is_downloaded_and_reported_unverified(
    fake_github: FakeGitHub, tmp_path: Path
) -> None:
    gh = fake_github
    run = gh.add_run(REPO)
    gh.add_artifact(run, "image-pr-7", b"uploaded by upload-artifact v3")

    def pre_v4(body: dict[str, Any]) -> dict[str, Any]:
        for item in body["artifacts"]:
            item["digest"] = None
            item["size_in_bytes"] = 7  # v3 listed the files' total, not the zip's size
        return body

    gh.corrupt("actions/list-workflow-run-artifacts", pre_v4)
    got = fetch_artifact(client_for(gh), query(run.id, "image-pr-7", tmp_path))
    assert got.digest_verified is False
    assert "NOT verified: GitHub recorded no digest for this artifact" in got.verification
    assert got.path.read_bytes() == b"uploaded by upload-artifact v3"
    assert got.sha256 == hashlib.sha256(b"uploaded by upload-artifact v3").hexdigest()


def test_an_artifact_without_digest_is_still_bounded_by_max_size(fake_github: FakeGitHub, tmp_path: Path) -> None:
    gh = fake_github
    run = gh.add_run(REPO)
    gh.add_artifact(run, "image-pr-7", bytes(10_000))

    def pre_v4(body: dict[str, Any]) -> dict[str, Any]:
        for item in body["artifacts"]:
            item["digest"] = None
            item["size_in_bytes"] = 10
        return body

    gh.corrupt("actions/list-workflow-run-artifacts", pre_v4)
    with pytest.raises(ArtifactError, match="the storage sent more than the artifact's size"):
        fetch_artifact(client_for(gh), query(run.id, "image-pr-7", tmp_path, max_size=5000))
    assert leftovers(tmp_path / "runner-temp") == []


def test_a_private_repository_without_access_names_the_missing_permission(
    fake_github: FakeGitHub, tmp_path: Path
) -> None:
    gh = fake_github
    gh.add_repo(REPO, private=True)
    run = gh.add_run(REPO)
    gh.add_artifact(run, "image-pr-7", b"x")

    with pytest.raises(ArtifactError) as refused:
        fetch_artifact(client_for(gh, token=""), query(run.id, "image-pr-7", tmp_path))
    message = str(refused.value)
    assert f"Listing the artifacts of run {run.id} of {REPO} failed: GitHub answered 404 Not Found" in message
    assert "permissions: actions: read" in message


def test_a_bad_token_is_said_plainly(fake_github: FakeGitHub, tmp_path: Path) -> None:
    gh = fake_github
    run = gh.add_run(REPO)
    with pytest.raises(ArtifactError, match=r"was refused \(401: Bad credentials\)"):
        fetch_artifact(client_for(gh, token="ghp_" + "x" * 36), query(run.id, "image-pr-7", tmp_path))


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("repository", "charon", "is not in the form owner/name"),
        ("repository", "a/b/c", "is not in the form owner/name"),
        ("run_id", 0, "is not a workflow run id"),
        ("name", "", "no artifact name was given"),
        ("max_size", 0, "must be positive"),
    ],
)
def test_a_malformed_query_is_refused_before_any_request(
    fake_github: FakeGitHub, tmp_path: Path, field: str, value: Any, message: str
) -> None:
    with pytest.raises(ArtifactError, match=message):
        fetch_artifact(
            client_for(fake_github), query(**{"run_id": 1, "name": "image", field: value}, tmp_path=tmp_path)
        )
    assert fake_github.requests == []


# --- the choice alone (pure) -----------------------------------------------------------------------------


def listed(artifact_id: int, name: str, *, created: str, expired: bool = False, size: int = 10) -> dict[str, Any]:
    return {
        "id": artifact_id,
        "name": name,
        "size_in_bytes": size,
        "expired": expired,
        "created_at": created,
        "expires_at": "2999-01-01T00:00:00Z",
        "digest": None,
        "workflow_run": {"id": 5},
    }


def test_of_several_same_named_artifacts_the_newest_unexpired_one_is_chosen(tmp_path: Path) -> None:
    items = [
        listed(1, "image", created="2024-01-01T00:00:00Z"),
        listed(3, "image", created="2024-01-03T00:00:00Z", expired=True),
        listed(2, "image", created="2024-01-02T00:00:00Z"),
    ]
    assert choose_artifact(items, query(5, "image", tmp_path), now=time.time())["id"] == 2


def test_an_exact_name_is_not_read_as_a_glob(tmp_path: Path) -> None:
    items = [listed(1, "image-a", created="2024-01-01T00:00:00Z")]
    with pytest.raises(ArtifactError, match="no artifact named 'image'"):
        choose_artifact(items, query(5, "image", tmp_path), now=time.time())


def test_untrusted_names_are_quoted_and_escaped_in_messages(tmp_path: Path) -> None:
    items = [listed(1, "evil\n::error::injected", created="2024-01-01T00:00:00Z")]
    with pytest.raises(ArtifactError) as refused:
        choose_artifact(items, query(5, "image", tmp_path), now=time.time())
    assert "\n" not in str(refused.value)
    assert "'evil\\n::error::injected'" in str(refused.value)
