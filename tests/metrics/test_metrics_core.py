"""The pure cores on hand-made data: percentiles against the standard library, GitHub's clock oddities, jobs
carried into a re-run attempt, and storage groups by prune's rules."""

from __future__ import annotations

import random
import re
import statistics

import pytest

from charon_ci.metrics.model import Attempt, History, Job, Run, Workflow
from charon_ci.metrics.roles import Roles
from charon_ci.metrics.stats import Summary, attempt_jobs, compute, job_ran, percentile
from charon_ci.metrics.storage import group_name, measure
from charon_ci.prune.model import PackageVersion
from charon_ci.prune.policy import build_policy
from charon_ci.prune.reachability import ChildRef, ManifestFacts

BUILD = re.compile(r"(?i)build")
PULL = re.compile(r"charon-ci/action-pull-image\b")
PRUNE = re.compile(r"charon-ci/action-prune\b")


@pytest.mark.parametrize("size", [2, 3, 10, 101, 1000])
def test_percentiles_interpolate_as_the_standard_library_does(size: int) -> None:
    rng = random.Random(size)  # noqa: S311 - reproducible test data
    values = [rng.uniform(0, 5000) for _ in range(size)]
    cuts = statistics.quantiles(values, n=100, method="inclusive")
    summary = Summary.of(values)
    assert summary.median == pytest.approx(statistics.median(values))
    assert summary.p90 == pytest.approx(cuts[89]) and summary.p95 == pytest.approx(cuts[94])
    assert summary.mean == pytest.approx(statistics.fmean(values)) and summary.max == max(values)
    assert percentile(sorted(values), 0.0) == min(values)


def test_an_empty_sample_has_no_numbers_only_n() -> None:
    assert Summary.of([]).as_json() == {"n": 0, "mean": None, "median": None, "p90": None, "p95": None,
                                        "max": None, "min": None}  # fmt: skip


def job(job_id: int, attempt: int, name: str, created: float, started: float | None, completed: float | None,
        conclusion: str | None = "success") -> Job:  # fmt: skip
    return Job(job_id, 1, attempt, name, "completed", conclusion, created, started, completed)


def test_a_job_listed_again_under_a_later_attempt_or_created_before_it_started_was_carried() -> None:
    attempts = {1: Attempt(1, 1, "completed", "failure", 100.0), 2: Attempt(1, 2, "completed", "success", 1000.0)}
    jobs = [
        job(10, 1, "build", 100, 110, 500),
        job(11, 1, "test", 500, 510, 600, "failure"),
        job(10, 2, "build", 100, 110, 500),  # same id under attempt 2 (a listing that repeats it)
        job(12, 2, "lint", 150, 160, 200),  # a new id with old times (the fake's and GitHub's copy)
        job(13, 2, "test", 1000, 1010, 1300),
    ]
    split = attempt_jobs(jobs, attempts)
    assert [j.id for j in split[1][0]] == [10, 11] and split[1][1] == []
    assert [j.id for j in split[2][0]] == [13] and [j.id for j in split[2][1]] == [10, 12]


def test_skipped_jobs_and_jobs_cancelled_before_they_started_did_not_run() -> None:
    assert not job_ran(job(1, 1, "t", 10, 13, 11, "skipped"))  # GitHub's "completed before it started"
    assert not job_ran(job(1, 1, "t", 10, 50, 50, "cancelled"))
    assert job_ran(job(1, 1, "t", 10, 20, 50, "cancelled"))
    assert not job_ran(job(1, 1, "t", 10, None, None, None))


def test_negative_spans_are_left_out_and_counted() -> None:
    flow = Workflow(1, "Build", ".github/workflows/build.yml")
    run = Run(1, 1, "Build", "push", "completed", "success", "a" * 40, "main", "o/r", (), 1, 100.0, 100.0, 900.0)
    # Clock skew: a job that started before it was queued, another that completed before it started.
    jobs = (job(1, 1, "build", 120, 110, 700), job(2, 1, "test", 120, 130, 125, "success"))
    history = History("o/r", 0.0, 1000.0, {1: flow}, [run], {1: {1: Attempt(1, 1, "completed", "success", 100.0)}},
                      {1: jobs})  # fmt: skip
    metrics = compute(history, Roles(frozenset({1}), frozenset({1})), BUILD, PULL, PRUNE)
    assert metrics.build.anomalies == {"queue time < 0": 1, "execution time < 0": 1}
    assert metrics.build.queue.n == 1 and metrics.build.execution.n == 1
    assert metrics.build.attempts.n == 1 and metrics.build.attempts.max == 600.0


def test_storage_groups_follow_prunes_rules() -> None:
    policy = build_policy([], [])
    assert group_name(["latest", "sha-abc1234"], policy) == "protected"
    assert group_name(["sha-abc1234", "pr-3-abc1234"], policy) == "pr-*"  # the first retention rule wins
    assert group_name(["feature-x-abc1234"], policy) == "feature-*"
    assert group_name(["buildcache"], policy) == "other"
    assert group_name([], policy) == "untagged"
    assert group_name(["sha256-" + "a" * 64 + ".sig"], policy) is None  # follows its subject


def test_a_blob_shared_by_two_groups_is_in_both_and_once_in_the_total() -> None:
    from datetime import UTC, datetime

    now = datetime(2026, 1, 1, tzinfo=UTC)

    def digest(n: int) -> str:
        return f"sha256:{n:064x}"

    versions = [
        PackageVersion(1, digest(1), ("latest",), now),
        PackageVersion(2, digest(2), ("pr-7-abc1234",), now),
        PackageVersion(3, digest(3), (), now),  # the platform image both indexes list
        PackageVersion(4, digest(4), (), now),  # pr-7's own platform image
        PackageVersion(5, digest(5), (), now),  # an orphan
        PackageVersion(6, digest(6), ("sha256-" + "0" * 63 + "1.sig",), now),  # latest's signature
    ]
    facts = {
        digest(1): ManifestFacts(digest(1), (ChildRef(digest(3)),), is_index=True),
        digest(2): ManifestFacts(digest(2), (ChildRef(digest(3)), ChildRef(digest(4))), is_index=True),
        digest(3): ManifestFacts(digest(3), blobs=(("sha256:base", 1000), ("sha256:app", 100))),
        digest(4): ManifestFacts(digest(4), blobs=(("sha256:base", 1000), ("sha256:pr", 10))),
        digest(5): ManifestFacts(digest(5), blobs=(("sha256:old", 7),)),
        digest(6): ManifestFacts(digest(6), blobs=(("sha256:sig", 1),)),
    }
    storage = measure("app", versions, facts, {}, build_policy([], []))
    groups = {g.name: (g.versions, g.manifests, g.bytes, g.exclusive_bytes) for g in storage.groups}
    assert groups["protected"] == (1, 3, 1101, 1)  # index, shared image, signature; "app" is shared with pr-7
    assert groups["pr-*"] == (1, 3, 1110, 10)
    assert groups["untagged"] == (1, 1, 7, 7)
    assert groups["sha-*"] == (0, 0, 0, 0)
    assert storage.total_bytes == 1000 + 100 + 10 + 7 + 1
