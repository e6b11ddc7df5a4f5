"""The fake GitHub server: contract checks on every operation, pagination, auth, artifacts, runs, pulls."""

from __future__ import annotations

import hashlib
import io
import zipfile
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from tests.support.fakegithub import Clock, FakeGitHub, FakeGitHubError
from tests.support.fakegithub.fixtures import serve_fake_github

ALL_OPERATIONS = 26
TIMEOUT = 10


class Client(requests.Session):
    """A session that never waits forever on the fake."""

    def request(self, method: str | bytes, url: str | bytes, *args: Any, **kwargs: Any) -> requests.Response:
        kwargs.setdefault("timeout", TIMEOUT)
        return super().request(method, url, *args, **kwargs)


@pytest.fixture
def gh() -> Iterator[FakeGitHub]:
    yield from serve_fake_github()


def session(token: str | None, scheme: str = "Bearer") -> Client:
    client = Client()
    client.headers["Accept"] = "application/vnd.github+json"
    if token:
        client.headers["Authorization"] = f"{scheme} {token}"
    return client


def populate(gh: FakeGitHub) -> dict[str, Any]:
    """One of everything, with the awkward cases GitHub has: fork PRs, re-runs, slashes in package names."""
    repo = gh.add_repo("wikid82/charon", owner_type="User")
    build = gh.add_workflow(repo, "docker-build.yml", name="Docker Build")
    pull = gh.add_pull(repo, "feature/x", title="Add x", labels=["ci"])
    fork_pull = gh.add_pull(repo, "patch-1", head_owner="contributor")
    run = gh.add_run(repo, build, event="pull_request", head_branch="feature/x", head_sha=pull.head_sha,
                     pull_requests=[pull], run_attempt=2, created_at="2024-05-01T10:00:00Z")
    gh.add_job(run, "build (amd64)", run_attempt=1, conclusion="failure",
               steps=[{"name": "Set up job", "started_at": run.run_started_at + 5,
                       "completed_at": run.run_started_at + 7}])
    gh.add_job(run, "build (amd64)", labels=["macos-14"])
    gh.add_job(run, "self-hosted", labels=["self-hosted", "linux"], status="in_progress")
    fork_run = gh.add_run(repo, build, event="pull_request", head_branch="patch-1", head_sha=fork_pull.head_sha,
                          head_repo="contributor/charon", pull_requests=[fork_pull])
    # Made now: an artifact of the May 2024 run would have expired by the fake's (real-time) clock.
    artifact = gh.add_artifact(run, "charon-image", files={"image.tar": b"\0" * 1000}, created_at=gh.clock.now())
    org_package = gh.add_package("wikid82-org", "charon/web", visibility="public", repository=repo)
    org_package.add_version("sha256:" + "a" * 64, ["latest", "v1.0.0"])
    org_version = org_package.add_version("sha256:" + "b" * 64, [])
    user_package = gh.add_package("wikid82", "charon", owner_type="User")
    user_version = user_package.add_version("sha256:" + "c" * 64, ["main"])
    user_package.add_version("sha256:" + "d" * 64, [])
    mine = gh.add_package("charon-bot", "tooling", owner_type="User", package_type="npm")
    mine_version = mine.add_version("1.2.3")
    mine.add_version("1.2.4")
    return {"repo": repo, "workflow": build, "pull": pull, "fork_pull": fork_pull, "run": run, "fork_run": fork_run,
            "artifact": artifact, "org_version": org_version, "user_version": user_version,
            "mine_version": mine_version}


def test_every_operation_is_served_and_checked_against_the_contract(gh: FakeGitHub) -> None:
    things = populate(gh)
    client = session(gh.token)
    base = gh.url
    runs = f"{base}/repos/wikid82/charon/actions/runs"
    run_id, artifact_id = things["run"].id, things["artifact"].id
    org_versions = f"{base}/orgs/wikid82-org/packages/container/charon%2Fweb/versions"
    user_versions = f"{base}/users/wikid82/packages/container/charon/versions"
    mine_versions = f"{base}/user/packages/npm/tooling/versions"
    calls = [
        ("GET", f"{base}/orgs/wikid82-org/packages?package_type=container", 200),
        ("GET", f"{base}/users/wikid82/packages?package_type=container", 200),
        ("GET", f"{base}/user/packages?package_type=npm", 200),
        ("GET", org_versions, 200), ("GET", user_versions, 200), ("GET", mine_versions, 200),
        ("GET", f"{org_versions}/{things['org_version'].id}", 200),
        ("GET", f"{user_versions}/{things['user_version'].id}", 200),
        ("GET", f"{mine_versions}/{things['mine_version'].id}", 200),
        ("DELETE", f"{org_versions}/{things['org_version'].id}", 204),
        ("DELETE", f"{user_versions}/{things['user_version'].id}", 400),  # the last tagged version
        ("DELETE", f"{mine_versions}/{things['mine_version'].id}", 204),
        ("GET", runs, 200), ("GET", f"{base}/repos/wikid82/charon/actions/workflows/docker-build.yml/runs", 200),
        ("GET", f"{base}/repos/wikid82/charon/actions/workflows", 200), ("GET", f"{runs}/{run_id}", 200),
        ("GET", f"{runs}/{run_id}/jobs?filter=all", 200), ("GET", f"{runs}/{run_id}/timing", 200),
        ("GET", f"{runs}/{run_id}/attempts/1", 200), ("GET", f"{runs}/{run_id}/attempts/2/jobs", 200),
        ("GET", f"{runs}/{run_id}/artifacts", 200), ("GET", f"{base}/repos/wikid82/charon/actions/artifacts", 200),
        ("GET", f"{base}/repos/wikid82/charon/actions/artifacts/{artifact_id}/zip", 302),
        ("GET", f"{base}/repos/wikid82/charon/pulls?state=all", 200),
        ("GET", f"{base}/repos/wikid82/charon/commits/{things['pull'].head_sha}/pulls", 200),
        ("GET", f"{base}/rate_limit", 200),
    ]
    for method, url, expected in calls:
        answer = client.request(method, url, allow_redirects=False)
        assert answer.status_code == expected, (method, url, answer.text)
    assert gh.violations == []
    served = {r.operation for r in gh.requests}
    assert len(served) == ALL_OPERATIONS
    assert set(gh.contract.operations) == served
    assert all(gh.contract_checks[operation] >= 1 for operation in served)


def test_official_openapi_core_validator_agrees(gh: FakeGitHub) -> None:
    """Cross-check the fake's own validator with openapi-core on a few rich responses."""
    from openapi_core import OpenAPI
    from openapi_core.contrib.requests import RequestsOpenAPIRequest, RequestsOpenAPIResponse

    class AsGitHub(RequestsOpenAPIRequest):  # the spec's server is https://api.github.com
        @property
        def host_url(self) -> str:
            return "https://api.github.com"

    spec = OpenAPI.from_dict(gh.contract.document)
    populate(gh)
    # openapi-core rejects null in a nullable enum (a queued job's conclusion); this run's jobs are all done.
    finished = gh.add_run("wikid82/charon")
    gh.add_job(finished, "test", steps=[{"name": "Run tests"}])
    client = session(gh.token)
    for path in ("/repos/wikid82/charon/actions/runs", f"/repos/wikid82/charon/actions/runs/{finished.id}/jobs",
                 "/repos/wikid82/charon/pulls?state=all", "/orgs/wikid82-org/packages/container/charon%2Fweb/versions",
                 "/rate_limit"):
        answer = client.get(gh.url + path)
        assert answer.status_code == 200
        spec.validate_response(AsGitHub(answer.request), RequestsOpenAPIResponse(answer))


def test_a_corrupted_body_is_caught_and_fails_the_test(gh: FakeGitHub) -> None:
    run = gh.add_run("wikid82/charon")
    gh.corrupt("actions/get-workflow-run", lambda body: {**body, "id": "not-an-integer"})
    answer = session(gh.token).get(f"{gh.url}/repos/wikid82/charon/actions/runs/{run.id}")
    assert answer.status_code == 500
    assert "breaks the OpenAPI contract" in answer.json()["message"]
    with pytest.raises(FakeGitHubError, match=r"fails the schema at id"):
        gh.check()
    gh.corrupt("actions/get-workflow-run", lambda body: {k: v for k, v in body.items() if k != "head_sha"})
    assert session(gh.token).get(f"{gh.url}/repos/wikid82/charon/actions/runs/{run.id}").status_code == 500
    taken = gh.take_violations()
    assert [v.operation_id for v in taken] == ["actions/get-workflow-run"] * 2
    assert "'head_sha' is a required property" in taken[1].problem


def test_the_fixture_raises_at_teardown_after_a_violation() -> None:
    lifecycle = serve_fake_github()
    gh = next(lifecycle)
    gh.corrupt("rate-limit/get", lambda body: {"rate": body["rate"]})
    assert requests.get(f"{gh.url}/rate_limit", timeout=TIMEOUT).status_code == 500
    with pytest.raises(FakeGitHubError, match="rate-limit/get"):
        next(lifecycle)


def test_unknown_routes_and_errors_have_githubs_error_shape(gh: FakeGitHub) -> None:
    client = session(gh.token)
    answer = client.get(f"{gh.url}/repos/wikid82/charon/actions/nothing")
    assert answer.status_code == 404
    assert answer.json() == {"message": "Not Found", "documentation_url": "https://docs.github.com/rest",
                             "status": "404"}
    assert client.get(f"{gh.url}/orgs/x/packages/container/none/versions").status_code == 404
    assert client.get(f"{gh.url}/orgs/x/packages/container/none/versions/12").json()["message"] == "Package not found."
    assert gh.contract_checks[None] == 1  # the unknown route's 404 was checked as basic-error too
    assert gh.violations == []


# --- the request and header contract -----------------------------------------------------------------------------

def test_an_undeclared_parameter_is_a_violation_and_not_honoured(gh: FakeGitHub) -> None:
    run = gh.add_run("acme/app")
    older = gh.add_artifact(run, "a", created_at=gh.clock.now() - 60)
    newer = gh.add_artifact(run, "b", created_at=gh.clock.now())
    client = session(gh.token)

    def ids(path: str, **params: str) -> list[int]:
        answer = client.get(f"{gh.url}/repos/acme/app/actions/{path}", params=params)
        assert answer.status_code == 200
        return [item["id"] for item in answer.json()["artifacts"]]

    # The run's list declares `direction`; the repository's list does not, so GitHub ignores it there.
    assert ids(f"runs/{run.id}/artifacts", direction="asc") == [older.id, newer.id]
    assert gh.violations == []
    assert ids("artifacts", direction="asc", per_page="1") == [newer.id]
    (violation,) = gh.take_violations()
    assert (violation.side, violation.operation_id) == ("request", "actions/list-artifacts-for-repo")
    assert violation.problem.startswith("undeclared query parameter 'direction'")
    # Not honoured means not carried on either: the Link header leaves it out; the request log keeps it.
    answer = client.get(f"{gh.url}/repos/acme/app/actions/artifacts", params={"direction": "asc", "per_page": "1"})
    assert "direction" not in answer.headers["link"]
    assert gh.requests[-1].query["direction"] == ["asc"]
    gh.take_violations()


@pytest.mark.parametrize(("path", "params", "problem"), [
    ("/repos/acme/app/actions/runs", {"per_page": "0"}, "per_page=0 is out of range 1..100"),
    ("/repos/acme/app/actions/runs", {"per_page": "101"}, "per_page=101 is out of range 1..100"),
    ("/repos/acme/app/actions/runs", {"page": "0"}, "page=0 is out of range 1.."),
    ("/repos/acme/app/actions/runs", {"per_page": "ten"}, "per_page='ten' is not an integer"),
    ("/repos/acme/app/actions/runs", {"status": "bogus"}, "status='bogus' is not one of completed,"),
    ("/repos/acme/app/actions/runs", {"exclude_pull_requests": "1"}, "exclude_pull_requests='1' is not true or false"),
    ("/repos/acme/app/actions/runs", {"check_suite_id": "x"}, "check_suite_id='x' is not an integer"),
    ("/repos/acme/app/actions/runs", {"sort": "created"}, "undeclared query parameter 'sort'"),
    ("/repos/acme/app/actions/runs/abc", {}, "path parameter run_id='abc' is not an integer"),
    ("/repos/acme/app/pulls", {"direction": "up"}, "direction='up' is not one of asc, desc"),
    ("/orgs/acme/packages", {}, "required query parameter 'package_type' is missing"),
    ("/orgs/acme/packages/container/app/versions", {"state": "gone"}, "state='gone' is not one of active, deleted"),
    ("/users/acme/packages/container/app/versions", {"state": "deleted"}, "undeclared query parameter 'state'"),
])
def test_out_of_range_and_mistyped_parameters_are_violations(gh: FakeGitHub, path: str, params: dict[str, str],
                                                             problem: str) -> None:
    gh.add_run("acme/app")
    session(gh.token).get(gh.url + path, params=params)
    (violation,) = gh.take_violations()
    assert violation.side == "request" and violation.problem.startswith(problem), violation.problem


def test_a_parameter_sent_twice_is_a_violation(gh: FakeGitHub) -> None:
    gh.add_run("acme/app")
    session(gh.token).get(f"{gh.url}/repos/acme/app/actions/runs?per_page=5&per_page=10")
    assert [v.problem for v in gh.take_violations()] == ["query parameter 'per_page' sent 2 times"]


def test_users_versions_take_page_and_per_page_though_the_description_omits_them(gh: FakeGitHub) -> None:
    # github/rest-api-description#1651: missing from the description, honoured by GitHub.
    package = gh.add_package("someone", "app", owner_type="User")
    for number in range(5):
        package.add_version(f"sha256:{number:064x}")
    client = session(gh.token)
    answer = client.get(f"{gh.url}/users/someone/packages/container/app/versions", params={"per_page": 2})
    assert len(answer.json()) == 2 and "page=3" in answer.headers["link"]
    assert client.get(answer.links["next"]["url"]).status_code == 200
    assert gh.violations == []


def test_the_fakes_own_links_are_valid_requests(gh: FakeGitHub) -> None:
    repo = gh.add_repo("acme/app")
    for _ in range(5):
        gh.add_run(repo, head_branch="main")
    client = session(gh.token)
    url: str | None = f"{gh.url}/repos/acme/app/actions/runs?per_page=2&branch=main&exclude_pull_requests=true"
    pages = 0
    while url:
        answer = client.get(url)
        pages += 1
        url = answer.links.get("next", {}).get("url")
    assert pages == 3 and gh.violations == []


def test_a_redirect_without_location_breaks_the_contract(gh: FakeGitHub) -> None:
    artifact = gh.add_artifact("acme/app", "logs")
    gh.corrupt_headers("actions/download-artifact", lambda h: {k: v for k, v in h.items() if k != "location"})
    answer = session(gh.token).get(f"{gh.url}/repos/acme/app/actions/artifacts/{artifact.id}/zip",
                                   allow_redirects=False)
    assert answer.status_code == 500
    (violation,) = gh.take_violations()
    assert violation.side == "response" and "a 302 redirect has no Location" in violation.problem


@pytest.mark.parametrize(("header", "value", "problem"), [
    ("link", '<http://h/x?page=2>; rel="next", garbage', "Link header is not RFC 8288"),
    ("link", 'http://h/x?page=2; rel="next"', "Link header is not RFC 8288"),
    ("link", '</x?page=2>; rel="next"', "is not an absolute http(s) URL"),
    ("link", '<http://h/x?page=2>; title="two"', "has no rel"),
    ("link", '<http://h/x?page=2>; rel="next", <http://h/x?page=3>; rel="next"', "rel 'next' appears twice"),
    ("x-ratelimit-remaining", "4999.0", "x-ratelimit-remaining: '4999.0' is not a non-negative integer"),
    ("x-ratelimit-reset", "-1", "x-ratelimit-reset: '-1' is not a non-negative integer"),
    ("x-ratelimit-limit", "", "x-ratelimit-limit: '' is not a non-negative integer"),
    ("retry-after", "soon", "retry-after: 'soon' is not a number of seconds"),
])
def test_malformed_headers_break_the_contract(gh: FakeGitHub, header: str, value: str, problem: str) -> None:
    gh.add_pull("acme/app", "feature")
    gh.corrupt_headers("pulls/list", lambda h: {**h, header: value})
    assert session(gh.token).get(f"{gh.url}/repos/acme/app/pulls").status_code == 500
    (violation,) = gh.take_violations()
    assert problem in violation.problem


def test_rate_limit_declares_its_headers_as_integers(gh: FakeGitHub) -> None:
    gh.corrupt_headers("rate-limit/get", lambda h: {k: v for k, v in h.items() if k != "x-ratelimit-limit"})
    assert session(gh.token).get(f"{gh.url}/rate_limit").status_code == 200  # declared, not required
    assert gh.violations == []
    gh.corrupt_headers("rate-limit/get", lambda h: {**h, "x-ratelimit-limit": "5k"})
    assert session(gh.token).get(f"{gh.url}/rate_limit").status_code == 500
    assert "X-RateLimit-Limit: '5k' is not an integer" in gh.take_violations()[0].problem


@pytest.mark.parametrize(("body", "problem"), [
    ({"message": "Not Found"}, "error body has no string 'documentation_url'"),
    ({"documentation_url": "https://docs.github.com/rest"}, "error body has no string 'message'"),
    ({"message": None, "documentation_url": "https://docs.github.com/rest"}, "error body fails the schema at message"),
])
def test_error_bodies_need_message_and_documentation_url(gh: FakeGitHub, body: dict[str, Any], problem: str) -> None:
    gh.corrupt("actions/get-workflow-run", lambda _: body)
    assert session(gh.token).get(f"{gh.url}/repos/acme/app/actions/runs/1").status_code == 500
    (violation,) = gh.take_violations()
    assert problem in violation.problem


def test_link_parser_reads_githubs_headers_and_rfc_8288_forms() -> None:
    from tests.support.fakegithub.headers import link_problems, parse_link

    github = ('<https://api.github.com/x?per_page=2&page=2>; rel="next", '
              '<https://api.github.com/x?per_page=2&page=5>; rel="last"')
    links, failure = parse_link(github)
    assert failure is None and [params["rel"] for _, params in links] == ["next", "last"]
    assert link_problems('<https://h/a,b>;rel=next ,<https://h/c> ; rel="prev first"') == []
    assert link_problems('<https://h/a>; rel="next"; title="a \\"quoted\\" title"') == []


# --- pagination ------------------------------------------------------------------------------------------------

def _links(answer: requests.Response) -> dict[str, dict[str, list[str]]]:
    return {rel: parse_qs(urlsplit(link["url"]).query) for rel, link in answer.links.items()}


def test_1234_versions_at_100_per_page_take_exactly_13_requests(gh: FakeGitHub) -> None:
    package = gh.add_package("acme", "app", visibility="public")
    for number in range(1234):
        package.add_version(f"sha256:{number:064x}", [f"v{number}"] if number % 10 == 0 else [],
                                    created_at=1_700_000_000 + number)
    client = session(gh.token)
    url: str | None = f"{gh.url}/orgs/acme/packages/container/app/versions?per_page=100&state=active"
    names: list[str] = []
    while url:
        answer = client.get(url)
        assert answer.status_code == 200
        names += [version["name"] for version in answer.json()]
        url = answer.links.get("next", {}).get("url")
    assert gh.count("GET", operation="packages/get-all-package-versions-for-package-owned-by-org") == 13
    assert len(names) == len(set(names)) == 1234
    assert names[0] == f"sha256:{1233:064x}"  # newest first


def test_link_header_rels_and_preserved_query(gh: FakeGitHub) -> None:
    package = gh.add_package("acme", "app")
    for number in range(250):
        package.add_version(f"sha256:{number:064x}")
    client = session(gh.token)
    base = f"{gh.url}/orgs/acme/packages/container/app/versions"
    first = client.get(base, params={"per_page": 100, "state": "active"})
    assert set(first.links) == {"next", "last"}
    assert first.links["next"]["url"].startswith(gh.url + "/orgs/acme/")
    assert _links(first)["next"] == {"per_page": ["100"], "state": ["active"], "page": ["2"]}
    assert _links(first)["last"]["page"] == ["3"]
    middle = client.get(base, params={"per_page": 100, "page": 2})
    assert set(middle.links) == {"prev", "next", "last", "first"}
    last = client.get(base, params={"per_page": 100, "page": 3})
    assert set(last.links) == {"prev", "first"} and len(last.json()) == 50
    assert len(client.get(base).json()) == 30  # default per_page
    capped = client.get(base, params={"per_page": 1000})  # GitHub caps it silently; the fake also objects
    assert len(capped.json()) == 100 and _links(capped)["last"]["page"] == ["3"]
    assert [v.problem for v in gh.take_violations()] == ["per_page=1000 is out of range 1..100"]
    single = client.get(f"{gh.url}/user/packages/container/none/versions")
    assert single.status_code == 404


# --- auth ------------------------------------------------------------------------------------------------------

def test_auth_schemes_missing_and_bad_credentials(gh: FakeGitHub) -> None:
    gh.add_package("acme", "app").add_version("sha256:" + "1" * 64, ["latest"])
    url = f"{gh.url}/orgs/acme/packages/container/app/versions"
    assert session(gh.token, "Bearer").get(url).status_code == 200
    assert session(gh.token, "token").get(url).status_code == 200
    missing = session(None).get(url)
    assert missing.status_code == 401 and missing.json()["message"] == "Requires authentication"
    bad = session("ghp_unknown").get(url)
    assert bad.status_code == 401 and bad.json()["message"] == "Bad credentials"
    assert bad.headers["x-ratelimit-limit"] == "60"  # charged to the client address
    assert session(gh.token, "Basic").get(url).status_code == 401


def test_private_repositories_hide_from_anonymous_callers(gh: FakeGitHub) -> None:
    gh.add_repo("acme/secret", private=True)
    gh.add_run("acme/secret")
    gh.add_run("acme/open")
    anonymous = session(None)
    assert anonymous.get(f"{gh.url}/repos/acme/secret/actions/runs").status_code == 404
    public = anonymous.get(f"{gh.url}/repos/acme/open/actions/runs")
    assert public.status_code == 200 and public.headers["x-ratelimit-limit"] == "60"
    assert session(gh.token).get(f"{gh.url}/repos/acme/secret/actions/runs").json()["total_count"] == 1


def test_read_only_token_cannot_delete_and_github_token_cannot_list_packages(gh: FakeGitHub) -> None:
    package = gh.add_package("acme", "app")
    package.add_version("sha256:" + "1" * 64, ["latest"])
    loose = package.add_version("sha256:" + "2" * 64)
    gh.add_token("ghs_readonly", kind="installation", read_only=True)
    reader = session("ghs_readonly")
    url = f"{gh.url}/orgs/acme/packages/container/app/versions/{loose.id}"
    refused = reader.delete(url)
    assert refused.status_code == 403 and refused.json()["message"] == "Resource not accessible by integration"
    assert reader.get(f"{gh.url}/orgs/acme/packages?package_type=container").status_code == 403
    assert reader.get(url).status_code == 200
    assert reader.get(url).headers["x-ratelimit-limit"] == "1000"
    assert session(gh.token).delete(url).status_code == 204


# --- artifacts -------------------------------------------------------------------------------------------------

def test_artifact_download_redirects_to_a_second_host_that_refuses_authorization(gh: FakeGitHub) -> None:
    run = gh.add_run("acme/app")
    artifact = gh.add_artifact(run, "image", files={"image.tar": b"layer-bytes"})
    client = session(gh.token)
    listed = client.get(f"{gh.url}/repos/acme/app/actions/runs/{run.id}/artifacts").json()["artifacts"][0]
    assert listed["digest"] == "sha256:" + hashlib.sha256(artifact.data).hexdigest()
    assert listed["workflow_run"]["head_sha"] == run.head_sha
    redirect = client.get(listed["archive_download_url"], allow_redirects=False)
    assert redirect.status_code == 302
    location = redirect.headers["location"]
    assert urlsplit(location).hostname == "127.0.0.2"
    with_token = requests.get(location, headers={"Authorization": f"Bearer {gh.token}"}, timeout=TIMEOUT)
    assert with_token.status_code == 400
    assert [leak.path for leak in gh.take_token_leaks()] == [urlsplit(location).path]
    plain = requests.get(location, timeout=TIMEOUT)
    assert plain.status_code == 200 and plain.headers["content-type"] == "application/zip"
    assert zipfile.ZipFile(io.BytesIO(plain.content)).read("image.tar") == b"layer-bytes"
    # requests drops Authorization when a redirect changes host, so following it works end to end.
    assert client.get(listed["archive_download_url"]).content == artifact.data


def test_signed_artifact_url_expires_and_expired_artifacts_are_gone() -> None:
    clock = Clock(frozen=True, start=1_700_000_000)
    with FakeGitHub(clock=clock) as gh:
        assert gh.settings.artifact_url_ttl == 60  # GitHub: the signed URL is valid for one minute
        artifact = gh.add_artifact("acme/app", "logs")
        old = gh.add_artifact("acme/app", "old", expired=True)
        client = session(gh.token)
        location = client.get(f"{gh.url}/repos/acme/app/actions/artifacts/{artifact.id}/zip",
                              allow_redirects=False).headers["location"]
        clock.advance(59)
        assert requests.get(location, timeout=TIMEOUT).status_code == 200
        clock.advance(2)
        late = requests.get(location, timeout=TIMEOUT)
        assert late.status_code == 403 and b"time frame" in late.content
        tampered = location.replace(f"/artifacts/{artifact.id}/", f"/artifacts/{old.id}/")
        assert requests.get(tampered, timeout=TIMEOUT).status_code == 403
        assert client.get(f"{gh.url}/repos/acme/app/actions/artifacts/{old.id}/zip").status_code == 410


def test_artifacts_expire_by_the_clock() -> None:
    clock = Clock(frozen=True, start=1_700_000_000)
    with FakeGitHub(clock=clock) as gh:
        run = gh.add_run("acme/app", created_at=clock.now() - 3600)
        artifact = gh.add_artifact(run, "image", expires_at=clock.now() + 120)
        client = session(gh.token)
        listing = f"{gh.url}/repos/acme/app/actions/runs/{run.id}/artifacts"
        download = f"{gh.url}/repos/acme/app/actions/artifacts/{artifact.id}/zip"
        listed = client.get(listing).json()["artifacts"][0]
        assert listed["expired"] is False and listed["expires_at"] == "2023-11-14T22:15:20Z"
        clock.advance(100)
        location = client.get(download, allow_redirects=False).headers["location"]  # signed until +160
        clock.advance(19)
        assert client.get(listing).json()["artifacts"][0]["expired"] is False
        clock.advance(1)  # the clock reaches expires_at
        assert artifact.expired
        assert client.get(listing).json()["artifacts"][0]["expired"] is True  # still listed, marked expired
        gone = client.get(download, allow_redirects=False)
        assert gone.status_code == 410 and gone.json()["message"] == "Artifact has expired"
        # A URL signed just before the expiry (still inside its minute) finds the blob deleted.
        late = requests.get(location, timeout=TIMEOUT)
        assert late.status_code == 404 and b"BlobNotFound" in late.content


def test_expired_flag_means_expired_now_and_cannot_be_undone() -> None:
    clock = Clock(frozen=True, start=1_700_000_000)
    with FakeGitHub(clock=clock) as gh:
        made_expired = gh.add_artifact("acme/app", "old", expired=True)
        assert made_expired.expired and made_expired.expires_at == clock.now()
        with pytest.raises(ValueError, match="contradicts"):
            gh.add_artifact("acme/app", "odd", expired=True, expires_at=clock.now() + 10)
        later = gh.add_artifact("acme/app", "later")
        assert not later.expired and later.expires_at == clock.now() + 90 * 86400
        later.expired = True
        assert later.expired and later.expires_at == clock.now()
        with pytest.raises(ValueError, match="cannot come back"):
            later.expired = False
        assert session(gh.token).get(f"{gh.url}/repos/acme/app/actions/artifacts/{later.id}/zip").status_code == 410


def test_artifacts_from_before_upload_artifact_v4_have_no_digest(gh: FakeGitHub) -> None:
    run = gh.add_run("acme/app")
    old = gh.add_artifact(run, "v3", files={"a.txt": "a"}, upload_artifact_version=3, created_at=gh.clock.now())
    new = gh.add_artifact(run, "v4", files={"a.txt": "a"}, created_at=gh.clock.now())
    listed = session(gh.token).get(f"{gh.url}/repos/acme/app/actions/runs/{run.id}/artifacts").json()["artifacts"]
    digests = {item["name"]: item["digest"] for item in listed}
    assert digests == {"v3": None, "v4": "sha256:" + hashlib.sha256(new.data).hexdigest()}
    assert old.digest is None
    download = f"{gh.url}/repos/acme/app/actions/artifacts/{old.id}/zip"
    assert session(gh.token).get(download).content == old.data  # downloadable all the same
    assert gh.violations == []  # `digest: null` is what the description allows


# --- workflow runs ---------------------------------------------------------------------------------------------

def test_run_filters(gh: FakeGitHub) -> None:
    repo = gh.add_repo("acme/app")
    gh.add_run(repo, event="push", head_branch="main", created_at="2024-01-10T12:00:00Z")
    gh.add_run(repo, event="pull_request", head_branch="feature", conclusion="failure",
               created_at="2024-01-20T00:00:00Z")
    gh.add_run(repo, status="in_progress", head_branch="main", head_sha="f" * 40, created_at="2024-02-01T08:00:00Z")
    client = session(gh.token)

    def total(**params: str) -> int:
        answer = client.get(f"{gh.url}/repos/acme/app/actions/runs", params=params)
        assert answer.status_code == 200, answer.text
        return int(answer.json()["total_count"])

    assert total() == 3
    assert total(event="pull_request") == 1
    assert total(branch="main") == 2
    assert total(status="completed") == 2 and total(status="failure") == 1 and total(status="in_progress") == 1
    assert total(head_sha="f" * 40) == 1
    assert total(created="2024-01-10..2024-01-20") == 2  # whole days, both ends included
    assert total(created=">=2024-01-20") == 2 and total(created="<2024-01-20") == 1
    assert total(created="2024-01-20T00:00:01Z..*") == 1
    assert total(created="<=2024-01-10T12:00:00Z") == 1
    bad = client.get(f"{gh.url}/repos/acme/app/actions/runs", params={"created": "yesterday"})
    assert bad.status_code == 422


def test_runs_list_caps_at_1000_results_but_counts_all(gh: FakeGitHub) -> None:
    repo = gh.add_repo("acme/busy")
    for number in range(1050):
        gh.add_run(repo, created_at=1_700_000_000 + number * 60)
    client = session(gh.token)
    seen = 0
    url: str | None = f"{gh.url}/repos/acme/busy/actions/runs?per_page=100&status=success"
    while url:
        body = client.get(url)
        assert body.json()["total_count"] == 1050
        seen += len(body.json()["workflow_runs"])
        url = body.links.get("next", {}).get("url")
    assert seen == 1000
    beyond = client.get(f"{gh.url}/repos/acme/busy/actions/runs", params={"per_page": 100, "page": 11})
    assert beyond.json()["workflow_runs"] == []


def test_fork_pull_request_runs_have_no_pull_requests_and_exclusion_works(gh: FakeGitHub) -> None:
    things = populate(gh)
    client = session(gh.token)
    runs = f"{gh.url}/repos/wikid82/charon/actions/runs"
    own = client.get(f"{runs}/{things['run'].id}").json()
    assert [p["number"] for p in own["pull_requests"]] == [things["pull"].number]
    assert client.get(f"{runs}/{things['run'].id}?exclude_pull_requests=true").json()["pull_requests"] == []
    fork = client.get(f"{runs}/{things['fork_run'].id}").json()
    assert fork["pull_requests"] == []
    assert fork["head_repository"]["full_name"] == "contributor/charon"
    assert fork["head_repository"]["fork"] is True


def test_jobs_latest_attempt_by_default_and_timing(gh: FakeGitHub) -> None:
    things = populate(gh)
    client = session(gh.token)
    base = f"{gh.url}/repos/wikid82/charon/actions/runs/{things['run'].id}"
    latest = client.get(f"{base}/jobs").json()
    assert latest["total_count"] == 2
    assert {job["run_attempt"] for job in latest["jobs"]} == {2}
    assert client.get(f"{base}/jobs?filter=all").json()["total_count"] == 3
    timing = client.get(f"{base}/timing").json()
    assert set(timing["billable"]) == {"MACOS"}  # attempt 1's job is not billed again; self-hosted never
    assert timing["billable"]["MACOS"]["total_ms"] == 60_000


# --- pull requests ---------------------------------------------------------------------------------------------

def test_pulls_head_and_state_filters(gh: FakeGitHub) -> None:
    repo = gh.add_repo("acme/app")
    open_pull = gh.add_pull(repo, "feature")
    fork_pull = gh.add_pull(repo, "feature", head_owner="someone")
    merged = gh.add_pull(repo, "done", merged_at="2024-01-01T00:00:00Z", merge_commit_sha="e" * 40)
    client = session(gh.token)

    def numbers(**params: str) -> list[int]:
        return [p["number"] for p in client.get(f"{gh.url}/repos/acme/app/pulls", params=params).json()]

    assert numbers() == [fork_pull.number, open_pull.number]
    assert numbers(state="closed") == [merged.number]
    assert numbers(state="all", head="someone:feature") == [fork_pull.number]
    assert numbers(head="acme:feature") == [open_pull.number]
    assert len(numbers(head="feature")) == 2  # GitHub ignores a head without OWNER:
    assert numbers(base="develop") == []
    assert client.get(f"{gh.url}/repos/acme/app/pulls?state=bogus").status_code == 422
    assert [v.side for v in gh.take_violations()] == ["request"]
    fork = client.get(f"{gh.url}/repos/acme/app/pulls", params={"head": "someone:feature"}).json()[0]
    assert fork["head"]["repo"]["fork"] is True and fork["head"]["label"] == "someone:feature"


def test_commit_pulls_skip_fork_only_commits(gh: FakeGitHub) -> None:
    repo = gh.add_repo("acme/app")
    own = gh.add_pull(repo, "feature", commits=["1" * 40, "2" * 40], head_sha="2" * 40)
    fork = gh.add_pull(repo, "patch", head_owner="someone", head_sha="3" * 40)
    merged = gh.add_pull(repo, "done", merged_at="2024-01-01T00:00:00Z", merge_commit_sha="4" * 40)
    client = session(gh.token)

    def numbers(sha: str) -> list[int]:
        return [p["number"] for p in client.get(f"{gh.url}/repos/acme/app/commits/{sha}/pulls").json()]

    assert numbers("1" * 40) == [own.number]
    assert numbers(fork.head_sha) == []
    assert numbers("4" * 40) == [merged.number]
    assert client.get(f"{gh.url}/repos/acme/app/pulls", params={"head": "someone:patch"}).json()[0]["number"] == 2
