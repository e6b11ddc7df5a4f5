"""What the metrics tell: offline recomputation from a dump, the before/after comparison with a baseline (a
file or the newest ci-metrics-* artifact), thresholds as warnings or failures, the job summary (charts
GitHub renders itself, untrusted names escaped) and the Prometheus text."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.metrics.helpers import REPO, T0, WINDOW, run_metrics, small_history
from tests.support.fakegithub import Clock, FakeGitHub
from tests.support.fakegithub.fixtures import serve_fake_github

MEASURES = ("build_time", "failure_rate", "builds_per_commit", "pull_success", "cleanup_success", "ci_time_per_pr",
            "daily", "workflow_runs", "workflows", "listing")  # fmt: skip


@pytest.fixture
def gh() -> Iterator[FakeGitHub]:
    yield from serve_fake_github(clock=Clock(start=T0 + 2 * 86400, frozen=True))


def test_a_dump_recomputes_the_same_numbers_offline_and_other_thresholds_judge_them_again(
    gh: FakeGitHub, tmp_path: Path
) -> None:
    small_history(gh)
    dump = tmp_path / "dump.json"
    online = run_metrics(gh, tmp_path / "online", **WINDOW, dump=str(dump))
    assert online.code == 0 and dump.is_file()
    served = len(gh.requests)
    offline_env = {"GITHUB_API_URL": "http://127.0.0.1:9", "GITHUB_TOKEN": ""}
    offline = run_metrics(None, tmp_path / "offline", env=offline_env, **{"from-dump": str(dump)})
    assert offline.code == 0, offline.stdout
    assert len(gh.requests) == served, "offline means no request at all"
    for key in MEASURES:
        assert offline.doc[key] == online.doc[key], key
    assert offline.doc["requests"]["offline"] is True and offline.outputs["requests-used"] == "0"
    assert offline.doc["window"] == online.doc["window"]

    strict = {"from-dump": str(dump), "max-build-minutes": "5", "fail-on-threshold": "true"}
    stricter = run_metrics(None, tmp_path / "strict", env=offline_env, **strict)
    assert stricter.code == 1
    assert "Build time above threshold" in [e.properties["title"] for e in stricter.errors]
    assert stricter.outputs["breaches"] == "3" and stricter.reports, "files and outputs are written before failing"

    narrower = run_metrics(None, tmp_path / "narrow", env=offline_env,
                           **{"from-dump": str(dump), "since": "2026-01-01T02:00:00Z"})  # fmt: skip
    assert narrower.code == 0
    assert narrower.doc["listing"]["runs"] == 3  # c, d and the second prune run


def edited_baseline(document: dict[str, Any], folder: Path, **changes: Any) -> str:
    document = json.loads(json.dumps(document))
    for dotted, value in changes.items():
        target = document
        *parents, last = dotted.split("__")
        for key in parents:
            target = target[key]
        target[last] = value
    path = folder / "ci-metrics-20251201.json"
    path.write_text(json.dumps(document))
    return str(path)


def test_the_baseline_comparison_shows_both_samples_and_refuses_to_judge_a_small_one(
    gh: FakeGitHub, tmp_path: Path
) -> None:
    small_history(gh)
    current = run_metrics(gh, tmp_path / "now", **WINDOW).doc
    baseline = edited_baseline(current, tmp_path, build_time__attempts__mean=400.0, build_time__attempts__n=50,
                               failure_rate__rate=0.25, failure_rate__decided=40)  # fmt: skip
    small = run_metrics(gh, tmp_path / "small", **WINDOW, baseline=baseline)
    assert small.code == 0
    measures = {m["key"]: m for m in small.doc["comparison"]["measures"]}
    mean = measures["build_time_mean"]
    assert (mean["before"], mean["after"], mean["n_before"], mean["n_after"]) == (400.0, 624.0, 50, 2)
    assert mean["change"] == 224.0 and mean["relative_change"] == 0.56
    assert mean["too_small"] and mean["verdict"] == "sample too small"
    assert "Baseline sample too small" in [w.properties["title"] for w in small.warnings]
    judged = {t["key"]: t for t in small.doc["thresholds"]}
    assert judged["build-time-increase"]["judged"] is False and not judged["build-time-increase"]["breached"]
    assert "| Build time, mean | 6.7 min | 10.4 min | +3.7 min (+56.0 %) | 50 | 2 | sample too small |" in small.summary

    judged_run = run_metrics(gh, tmp_path / "judged", **WINDOW, baseline=baseline,
                             **{"min-sample": "1", "fail-on-threshold": "true"})  # fmt: skip
    assert judged_run.code == 1
    titles = [e.properties["title"] for e in judged_run.errors]
    assert "Build time regression against the baseline" in titles
    assert "Failure rate regression against the baseline" in titles  # 25 % -> 50 %: +25 points > 3
    verdicts = {t["key"]: t for t in judged_run.doc["thresholds"]}
    assert verdicts["build-time-increase"]["value"] == 0.56 and verdicts["build-time-increase"]["breached"]
    assert verdicts["failure-rate-increase"]["value"] == 0.25
    assert judged_run.outputs["breaches"] == str(sum(t["breached"] for t in judged_run.doc["thresholds"]))


def test_the_newest_metrics_artifact_is_the_baseline(gh: FakeGitHub, tmp_path: Path) -> None:
    small_history(gh)
    current = run_metrics(gh, tmp_path / "now", **WINDOW).doc
    older = json.loads(json.dumps(current))
    older["build_time"]["attempts"]["mean"] = 1.0
    newer = json.loads(json.dumps(current))
    newer["build_time"]["attempts"]["mean"] = 600.0
    gh.add_artifact(REPO, "ci-metrics-20251230", files={"ci-metrics-20251230.json": json.dumps(older)},
                    created_at=T0 - 2 * 86400)  # fmt: skip
    gh.add_artifact(REPO, "ci-metrics-20251231", files={"ci-metrics-20251231.json": json.dumps(newer)},
                    created_at=T0 - 86400)  # fmt: skip
    gh.add_artifact(REPO, "ci-metrics-20251229", files={"ci-metrics-20251229.json": "{}"}, created_at=T0,
                    expired=True)  # fmt: skip
    gh.add_artifact(REPO, "coverage", files={"x.txt": "no"}, created_at=T0 + 10)
    result = run_metrics(gh, tmp_path / "with", **WINDOW, baseline="artifact")
    assert result.code == 0, result.stdout
    comparison = result.doc["comparison"]
    assert comparison["baseline"].startswith("artifact ci-metrics-20251231")
    assert {m["key"]: m["before"] for m in comparison["measures"]}["build_time_mean"] == 600.0
    # It also served as the state: its runs were not fetched again.
    assert result.doc["requests"]["runs_reused"] == 10


def test_the_summary_draws_with_mermaid_and_escapes_names_from_workflow_files(gh: FakeGitHub, tmp_path: Path) -> None:
    world = small_history(gh)
    hostile = "evil](https://x.test) <img src=x> *bold* ::error::pwned"
    gh.add_job(world.b, hostile, created_at=T0 + 3610, started_at=T0 + 3620, completed_at=T0 + 4400)
    result = run_metrics(gh, tmp_path, **WINDOW)
    assert result.code == 0
    summary = result.summary
    assert "```mermaid\nxychart-beta" in summary
    assert 'x-axis ["01-01"]' in summary
    assert "![" not in summary and "<img" not in summary and "](https" not in summary
    assert "evil\\]\\(https://x\\.test\\) &lt;img src=x\\>" in summary
    assert not result.errors, "a job name never becomes a workflow command"


def test_prometheus_text_carries_the_report_numbers(gh: FakeGitHub, tmp_path: Path) -> None:
    small_history(gh)
    target = tmp_path / "metrics.prom"
    result = run_metrics(gh, tmp_path, **WINDOW, **{"prometheus-file": str(target)})
    doc = result.doc
    text = target.read_text()
    samples = dict(re.findall(r"^(charon_ci_[a-z_]+\{[^}]*\}) (\S+)$", text, re.MULTILINE))
    labels = f'repository="{REPO}"'
    assert float(samples[f'charon_ci_build_time_seconds{{{labels},quantile="0.5"}}']) == doc["build_time"]["attempts"][
        "median"]  # fmt: skip
    assert int(samples[f"charon_ci_build_time_seconds_count{{{labels}}}"]) == 2
    assert float(samples[f"charon_ci_build_failure_rate{{{labels}}}"]) == 0.5
    assert float(samples[f"charon_ci_pull_success_rate{{{labels}}}"]) == doc["pull_success"]["rate"]
    assert "# TYPE charon_ci_build_time_seconds summary" in text
    assert all(line.startswith(("#", "charon_ci_")) for line in text.splitlines())
