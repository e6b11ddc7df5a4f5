"""Fault injection and rate limits of the fake GitHub server."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from tests.support.fakegithub import Clock, FakeGitHub
from tests.support.fakegithub.fixtures import serve_fake_github

TIMEOUT = 10
RATE_HEADERS = ("x-ratelimit-limit", "x-ratelimit-remaining", "x-ratelimit-used", "x-ratelimit-reset",
                "x-ratelimit-resource")


@pytest.fixture
def clock() -> Clock:
    return Clock(start=1_700_000_000, frozen=True)


@pytest.fixture
def gh(clock: Clock) -> Iterator[FakeGitHub]:
    yield from serve_fake_github(clock=clock, seed=7)


def get(gh: FakeGitHub, path: str, token: str | None = None, **kwargs: object) -> requests.Response:
    headers = {"Authorization": f"Bearer {token or gh.token}"}
    return requests.get(gh.url + path, headers=headers, timeout=kwargs.pop("timeout", TIMEOUT), **kwargs)  # type: ignore[arg-type]


def test_injected_5xx_follow_the_seeded_rng() -> None:
    def failing_indexes(seed: int) -> list[int]:
        with FakeGitHub(seed=seed) as gh:
            gh.add_run("acme/app")
            gh.faults.errors(0.3, status=503, operation="actions/list-workflow-runs-for-repo")
            statuses = [get(gh, "/repos/acme/app/actions/runs").status_code for _ in range(60)]
            assert get(gh, "/rate_limit").status_code == 200  # another operation: untouched
            assert set(statuses) <= {200, 503}
            assert gh.count(status=503) == statuses.count(503) == gh.faults.rules[0].fired
            return [index for index, status in enumerate(statuses) if status == 503]

    first = failing_indexes(11)
    assert 0 < len(first) < 60
    assert failing_indexes(11) == first
    assert failing_indexes(12) != first


def test_fail_next_counts_down(gh: FakeGitHub) -> None:
    gh.add_run("acme/app")
    gh.faults.fail_next(2, status=502, method="GET", path=r"/actions/runs$")
    statuses = [get(gh, "/repos/acme/app/actions/runs").status_code for _ in range(3)]
    assert statuses == [502, 502, 200]
    body = get(gh, "/repos/acme/app/actions/runs").json()
    assert body["total_count"] == 1


def test_connection_reset_sends_no_response_and_is_logged(gh: FakeGitHub) -> None:
    gh.add_run("acme/app")
    gh.faults.reset_next(1, operation="actions/list-workflow-runs-for-repo")
    with pytest.raises(requests.ConnectionError):
        get(gh, "/repos/acme/app/actions/runs")
    assert get(gh, "/repos/acme/app/actions/runs").status_code == 200
    assert [(r.operation, r.status) for r in gh.requests] == [
        ("actions/list-workflow-runs-for-repo", None), ("actions/list-workflow-runs-for-repo", 200)]
    assert gh.requests[0].reset


def test_latency_makes_an_impatient_client_time_out(gh: FakeGitHub) -> None:
    gh.faults.latency(0.6, path="^/rate_limit$")
    with pytest.raises(requests.Timeout):
        get(gh, "/rate_limit", timeout=0.1)
    assert gh.faults.rules[0].fired == 1


def test_primary_budget_headers_exhaustion_and_reset(gh: FakeGitHub, clock: Clock) -> None:
    gh.add_run("acme/app")
    gh.set_rate_limit(limit=3)
    answers = [get(gh, "/repos/acme/app/actions/runs") for _ in range(4)]
    assert [a.status_code for a in answers] == [200, 200, 200, 403]
    assert all(all(name in a.headers for name in RATE_HEADERS) for a in answers)
    assert [a.headers["x-ratelimit-remaining"] for a in answers] == ["2", "1", "0", "0"]
    assert answers[0].headers["x-ratelimit-resource"] == "core"
    assert int(answers[0].headers["x-ratelimit-reset"]) == 1_700_000_000 + 3600
    assert answers[3].json()["message"].startswith("API rate limit exceeded for user ID")
    overview = get(gh, "/rate_limit")  # free, and still answers while exhausted
    assert overview.status_code == 200
    assert overview.json()["resources"]["core"] == {"limit": 3, "remaining": 0, "used": 3,
                                                    "reset": 1_700_000_000 + 3600}
    assert overview.json()["rate"] == overview.json()["resources"]["core"]
    clock.advance(3600)
    assert get(gh, "/repos/acme/app/actions/runs").headers["x-ratelimit-remaining"] == "2"


def test_rate_limit_endpoint_does_not_spend_budget_and_304_is_free(gh: FakeGitHub) -> None:
    gh.add_run("acme/app")
    for _ in range(5):
        get(gh, "/rate_limit")
    assert gh.rate_limit().used == 0
    first = get(gh, "/repos/acme/app/actions/runs")
    assert first.headers["x-ratelimit-used"] == "1"
    again = requests.get(gh.url + "/repos/acme/app/actions/runs", timeout=TIMEOUT,
                         headers={"Authorization": f"token {gh.token}", "If-None-Match": first.headers["etag"]})
    assert again.status_code == 304 and again.content == b""
    assert again.headers["x-ratelimit-used"] == "1"


def test_installation_tokens_have_their_own_smaller_budget(gh: FakeGitHub) -> None:
    gh.add_token("ghs_job", kind="installation")
    gh.set_rate_limit("ghs_job", remaining=0)
    refused = get(gh, "/rate_limit", token="ghs_job")
    assert refused.json()["resources"]["core"]["limit"] == 1000
    gh.add_run("acme/app")
    exhausted = get(gh, "/repos/acme/app/actions/runs", token="ghs_job")
    assert exhausted.status_code == 403 and "installation ID" in exhausted.json()["message"]
    assert get(gh, "/repos/acme/app/actions/runs").status_code == 200  # the default token is unaffected


@pytest.mark.parametrize("status", [403, 429])
def test_secondary_limit_900_points_a_minute_means_180_deletes(gh: FakeGitHub, clock: Clock, status: int) -> None:
    package = gh.add_package("acme", "app")
    package.add_version("sha256:" + "f" * 64, ["latest"])
    versions = [package.add_version(f"sha256:{n:064x}") for n in range(185)]
    gh.faults.secondary_limit(900, status=status)
    client = requests.Session()
    client.headers["Authorization"] = f"Bearer {gh.token}"
    base = f"{gh.url}/orgs/acme/packages/container/app/versions"
    answers = [client.delete(f"{base}/{v.id}", timeout=TIMEOUT) for v in versions[:181]]
    assert [a.status_code for a in answers].count(204) == 180
    refused = answers[-1]
    assert refused.status_code == status
    assert refused.headers["retry-after"] == "60"  # the frozen clock: all 900 points leave the window together
    assert "secondary rate limit" in refused.json()["message"]
    assert client.get(base, timeout=TIMEOUT).status_code == 200  # another endpoint has its own points
    clock.advance(30)
    assert client.delete(f"{base}/{versions[181].id}", timeout=TIMEOUT).headers["retry-after"] == "30"
    clock.advance(30)
    assert client.delete(f"{base}/{versions[181].id}", timeout=TIMEOUT).status_code == 204


def test_scaled_clock_runs_simulated_minutes_in_real_milliseconds() -> None:
    clock = Clock(start=0, scale=6000)  # one real millisecond = six simulated seconds
    before = clock.now()
    clock.sleep(60)  # a simulated minute: about 10 ms of real time
    assert clock.now() - before >= 60
    at_change = clock.now()
    clock.scale = 1.0  # re-anchored: simulated time keeps going forward from where it was
    assert clock.now() >= at_change
    frozen = Clock(start=100, frozen=True)
    frozen.sleep(3600)  # a frozen clock advances instead of sleeping
    assert frozen.now() == 3700


def test_concurrent_clients_on_keep_alive_connections(gh: FakeGitHub) -> None:
    gh.add_run("acme/app")

    def worker(_: int) -> list[int]:
        with requests.Session() as session:
            session.headers["Authorization"] = f"Bearer {gh.token}"
            return [session.get(f"{gh.url}/repos/acme/app/actions/runs", timeout=TIMEOUT).status_code
                    for _ in range(40)]

    with ThreadPoolExecutor(max_workers=8) as pool:
        statuses = [status for batch in pool.map(worker, range(8)) for status in batch]
    assert statuses == [200] * 320
    assert gh.count(operation="actions/list-workflow-runs-for-repo", status=200) == 320
    assert gh.rate_limit().used == 320


@pytest.mark.parametrize("status", [403, 429])
def test_primary_limit_answers_with_the_configured_status_and_no_retry_after(gh: FakeGitHub, status: int) -> None:
    gh.add_run("acme/app")
    gh.settings.primary_limit_status = status
    gh.set_rate_limit(limit=1)
    assert get(gh, "/repos/acme/app/actions/runs").status_code == 200
    refused = get(gh, "/repos/acme/app/actions/runs")
    assert refused.status_code == status
    assert refused.headers["x-ratelimit-remaining"] == "0" and "retry-after" not in refused.headers
    assert int(refused.headers["x-ratelimit-reset"]) == 1_700_000_000 + 3600
    assert refused.json()["message"].startswith("API rate limit exceeded for user ID")
    assert refused.json()["documentation_url"].startswith("https://docs.github.com/")
    assert gh.violations == []


def test_primary_limit_status_other_than_403_or_429_is_a_fake_error(gh: FakeGitHub) -> None:
    gh.add_run("acme/app")
    gh.settings.primary_limit_status = 418
    gh.set_rate_limit(remaining=0)
    assert get(gh, "/repos/acme/app/actions/runs").status_code == 500
    assert "primary_limit_status must be 403 or 429" in gh.internal_errors[0]
    gh.internal_errors.clear()


@pytest.mark.parametrize("status", [403, 429])
def test_secondary_limit_can_refuse_without_retry_after(gh: FakeGitHub, clock: Clock, status: int) -> None:
    gh.add_run("acme/app")
    gh.faults.secondary_limit(3, status=status, retry_after=False)
    answers = [get(gh, "/repos/acme/app/actions/runs") for _ in range(4)]
    assert [a.status_code for a in answers] == [200, 200, 200, status]
    refused = answers[-1]
    assert "retry-after" not in refused.headers
    assert refused.headers["x-ratelimit-remaining"] != "0"  # the primary budget is fine: wait a minute
    assert "secondary rate limit" in refused.json()["message"]
    clock.advance(60)
    assert get(gh, "/repos/acme/app/actions/runs").status_code == 200


def test_secondary_next_refuses_a_number_of_requests_with_or_without_retry_after(gh: FakeGitHub) -> None:
    gh.add_run("acme/app")
    bare = gh.faults.secondary_next(1, status=429, operation="actions/list-workflow-runs-for-repo")
    timed = gh.faults.secondary_next(1, status=403, retry_after=7, method="GET", path=r"/actions/runs$")
    first, second, third = (get(gh, "/repos/acme/app/actions/runs") for _ in range(3))
    assert (first.status_code, first.headers.get("retry-after")) == (429, None)
    assert (second.status_code, second.headers.get("retry-after")) == (403, "7")
    assert third.status_code == 200
    assert (bare.fired, timed.fired) == (1, 1)
    assert gh.rate_limit().used == 3  # the fake spends the primary budget before the secondary check
    with pytest.raises(ValueError, match="403 or 429"):
        gh.faults.secondary_next(status=503)
