"""`charon-ci metrics`: build time, queue time, failure rate, builds per commit, pull and cleanup success, CI
time per PR and registry storage over a window of workflow runs (action-metrics).

Reads every input once into `MetricsSettings` (a bad one stops the run before any request), then:
- reads the previous metrics JSON (`state`, else `baseline`) to reuse what it measured;
- lists the window and reads the jobs the measures need within the request budget (charon_ci.metrics.history),
  or takes everything from a dump (`from-dump`, no network);
- measures (stats, storage), judges the thresholds, compares with the baseline;
- writes ci-metrics-YYYYMMDD.json, the dump and Prometheus file if asked, the job summary and the outputs.
"""

from __future__ import annotations

import json
import os
import re
import sys
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from charon_ci import gha
from charon_ci.durations import ACCEPTED as DURATION_ACCEPTED
from charon_ci.durations import parse_duration
from charon_ci.metrics.roles import DEFAULT_BUILD_JOB_PATTERN, DEFAULT_PRUNE_STEP_PATTERN, DEFAULT_PULL_STEP_PATTERN
from charon_ci.metrics.settings import MetricsSettings, PreviousSource, Thresholds
from charon_ci.prune.patterns import parse_protect
from charon_ci.prune.policy import DEFAULT_PROTECT, DEFAULT_RETENTION, Policy, parse_retention

HELP = """usage: charon-ci metrics

Measures the CI pipeline over a window of workflow runs: build time per attempt (queue apart), failure rate
with its denominator, flaky re-runs, builds per commit, image pull and cleanup success, CI time per PR, and
registry storage by tag pattern. Reads INPUT_BUILD-WORKFLOWS, INPUT_BUILD-JOB-PATTERN,
INPUT_BUILD-JOB-WORKFLOWS, INPUT_PULL-WORKFLOWS, INPUT_PULL-STEP-PATTERN, INPUT_PRUNE-WORKFLOWS,
INPUT_PRUNE-STEP-PATTERN, INPUT_PULL-SAMPLE, INPUT_SINCE, INPUT_UNTIL, INPUT_PACKAGE, INPUT_OWNER,
INPUT_REGISTRY-HOST, INPUT_STORAGE-PATTERNS, INPUT_PROTECT, INPUT_BASELINE, INPUT_STATE, INPUT_REPORT-DIR,
INPUT_MAX-BUILD-MINUTES, INPUT_MAX-FAILURE-RATE, INPUT_MAX-PULL-FAILURE-RATE, INPUT_MAX-BUILD-TIME-INCREASE,
INPUT_MAX-FAILURE-RATE-INCREASE, INPUT_FAIL-ON-THRESHOLD, INPUT_MIN-SAMPLE, INPUT_MAX-REQUESTS,
INPUT_FROM-DUMP, INPUT_DUMP, INPUT_PROMETHEUS-FILE, INPUT_REPOSITORY, INPUT_GITHUB-TOKEN and GITHUB_API_URL;
writes ci-metrics-YYYYMMDD.json, the job summary and outputs (report-path, build-time-median-minutes,
build-time-p95-minutes, queue-time-median-minutes, failure-rate, builds-per-commit, pull-success-rate,
storage-bytes, breaches, requests-used, ...). With INPUT_FROM-DUMP set it touches no network.
"""

DEFAULT_BUILD_WORKFLOWS = ("docker-build.yml",)
DEFAULT_WINDOW = 7 * 86400.0
DAY = 86400.0
_REPOSITORY_RE = re.compile(r"[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+")
_OWNER_RE = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,38})")
_GHCR_PACKAGE_RE = re.compile(r"[a-z0-9](?:[a-z0-9._-]|/(?=[a-z0-9]))*")
_HOST_RE = re.compile(r"[A-Za-z0-9.-]+(?::[0-9]{1,5})?")
_DATE_RE = re.compile(r"\d{4}-\d{2}-\d{2}")
_MOMENT_ACCEPTED = "an ISO 8601 date (2026-02-01) or time with a zone (2026-02-01T00:00:00Z)"


# ------------------------------------------------------------------------------------------ inputs


def parse_moment(text: str, input_name: str, *, end_of_day: bool, accepted: str = _MOMENT_ACCEPTED) -> float:
    value = text.strip()
    try:
        if _DATE_RE.fullmatch(value):
            day = datetime.strptime(value, "%Y-%m-%d").replace(tzinfo=UTC)
            return day.timestamp() + (DAY - 1 if end_of_day else 0)
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise gha.InputError(input_name, accepted, text) from None
    if moment.tzinfo is None or not re.match(r"\d{4}-\d{2}-\d{2}[T ]", value):
        raise gha.InputError(input_name, accepted, text)
    try:
        return float(int(moment.astimezone(UTC).timestamp()))
    except (OverflowError, ValueError, OSError):
        raise gha.InputError(input_name, accepted, text) from None


def parse_fraction(text: str, input_name: str, default: float) -> float:
    """`0.05` or `5%`: a fraction from 0 to 1. A bare number above 1 is refused, not guessed as a percent."""
    accepted = "a fraction from 0 to 1 (0.05) or a percentage (5%)"
    value = text.strip()
    if not value:
        return default
    try:
        number = float(value[:-1]) / 100.0 if value.endswith("%") else float(value)
    except ValueError:
        raise gha.InputError(input_name, accepted, text) from None
    if not 0.0 <= number <= 1.0:  # also refuses nan
        raise gha.InputError(input_name, accepted, text)
    return number


def parse_positive(text: str, input_name: str, default: float) -> float:
    value = text.strip()
    if not value:
        return default
    try:
        number = float(value)
    except ValueError:
        raise gha.InputError(input_name, "a positive number", text) from None
    if not 0.0 < number < 1e9:
        raise gha.InputError(input_name, "a positive number", text)
    return number


def parse_count(text: str, input_name: str, default: int, *, low: int, high: int) -> int:
    value = text.strip()
    if not value:
        return default
    if not (value.isascii() and value.isdigit()) or not low <= int(value) <= high:
        raise gha.InputError(input_name, f"a whole number from {low} to {high}", text)
    return int(value)


def parse_pattern(text: str, input_name: str, default: str) -> re.Pattern[str]:
    source = text.strip() or default
    try:
        return re.compile(source)
    except re.error as exc:
        raise gha.InputError(input_name, f"a Python regular expression ({exc})", source) from None


def parse_workflow_names(inputs: gha.Inputs, name: str) -> tuple[str, ...] | None:
    """Names one a line (or comma-separated); empty: None (recognise them); `none`: no such workflows."""
    lines = [part.strip() for line in inputs.lines(name) for part in line.split(",")]
    names = tuple(part for part in lines if part)
    if not names:
        return None
    if names == ("none",):
        return ()
    return names


def parse_previous(inputs: gha.Inputs, name: str) -> PreviousSource | None:
    value = inputs.text(name)
    if not value:
        return None
    if value == "artifact":
        return PreviousSource(name)
    return PreviousSource(name, Path(value))


def parse_storage_policy(inputs: gha.Inputs) -> Policy:
    # The prune action's `retention` lines work as they are: only the pattern before `=` is used here.
    lines = [line.split("=", 1)[0].strip() + "=1d" for line in inputs.lines("storage-patterns") if line.strip()]
    rules = parse_retention(lines or list(DEFAULT_RETENTION), "storage-patterns")
    protect = parse_protect(inputs.lines("protect") or list(DEFAULT_PROTECT), "protect")
    return Policy(rules=rules, protect=protect, min_age=parse_duration("0m", "min-age"))


def parse_settings(env: Mapping[str, str], now: float) -> MetricsSettings:
    """Every input, checked; raises InputError for the first bad one."""
    inputs = gha.Inputs(env)
    from_dump_text = inputs.text("from-dump")
    from_dump = Path(from_dump_text) if from_dump_text else None
    repository = inputs.text("repository", env.get("GITHUB_REPOSITORY", ""))
    if repository and not _REPOSITORY_RE.fullmatch(repository):
        raise gha.InputError("repository", "owner/name of the repository whose workflow runs to measure", repository)
    if not repository and from_dump is None:
        raise gha.InputError("repository", "owner/name of the repository whose workflow runs to measure")
    token = inputs.text("github-token", env.get("GITHUB_TOKEN", ""))
    if not token and from_dump is None:
        raise gha.InputError("github-token", "a token that may read the repository's actions (actions: read)")

    until_text = inputs.text("until")
    until = parse_moment(until_text, "until", end_of_day=True) if until_text else None
    since_text = inputs.text("since")
    since: float | None = None
    since_span: float | None = None
    if since_text:
        if re.fullmatch(r"(?:\d+[mhdw])+", since_text):
            since_span = parse_duration(since_text, "since").total_seconds()
        else:
            since = parse_moment(
                since_text,
                "since",
                end_of_day=False,
                accepted=f"{_MOMENT_ACCEPTED}, or a duration before until ({DURATION_ACCEPTED})",
            )
    if since is not None and until is not None and until <= since:
        raise gha.InputError("until", f"a time after since ({since_text})", until_text)
    if since_span is not None and until is not None:
        since = until - since_span
    if from_dump is None:
        until = now if until is None else until
        since = until - (since_span or DEFAULT_WINDOW) if since is None else since
        if until <= since:
            raise gha.InputError("since", "a time before until (default: now)", since_text)

    build_workflows = parse_workflow_names(inputs, "build-workflows") or DEFAULT_BUILD_WORKFLOWS
    build_job_workflows = parse_workflow_names(inputs, "build-job-workflows") or ()
    owner = inputs.text("owner", env.get("GITHUB_REPOSITORY_OWNER", "") or repository.partition("/")[0])
    if owner and not _OWNER_RE.fullmatch(owner):
        raise gha.InputError("owner", "a GitHub user or organization login", owner)
    package = inputs.text("package")
    if package and not (_GHCR_PACKAGE_RE.fullmatch(package) and len(package) <= 255):
        raise gha.InputError("package", "a GHCR container package name (lowercase, may contain /)", package)
    registry_host = inputs.text("registry-host", "ghcr.io")
    if not _HOST_RE.fullmatch(registry_host):
        raise gha.InputError("registry-host", "a registry host, optionally with :port (e.g. ghcr.io)", registry_host)
    dump_text = inputs.text("dump")
    prometheus = inputs.text("prometheus-file")
    settings = MetricsSettings(
        repository=repository,
        github_token=token,
        api_url=env.get("GITHUB_API_URL", "").strip() or "https://api.github.com",
        since=since,
        until=until,
        build_workflows=build_workflows,
        build_job_pattern=parse_pattern(
            inputs.text("build-job-pattern"), "build-job-pattern", DEFAULT_BUILD_JOB_PATTERN
        ),
        build_job_workflows=build_job_workflows,
        pull_workflows=parse_workflow_names(inputs, "pull-workflows"),
        prune_workflows=parse_workflow_names(inputs, "prune-workflows"),
        pull_step_pattern=parse_pattern(
            inputs.text("pull-step-pattern"), "pull-step-pattern", DEFAULT_PULL_STEP_PATTERN
        ),
        prune_step_pattern=parse_pattern(
            inputs.text("prune-step-pattern"), "prune-step-pattern", DEFAULT_PRUNE_STEP_PATTERN
        ),
        pull_sample=parse_count(inputs.text("pull-sample"), "pull-sample", 20, low=0, high=100_000),
        package=package,
        owner=owner,
        registry_host=registry_host,
        storage_policy=parse_storage_policy(inputs),
        baseline=parse_previous(inputs, "baseline"),
        state=parse_previous(inputs, "state"),
        report_dir=Path(inputs.text("report-dir", ".")),
        thresholds=Thresholds(
            max_build_minutes=parse_positive(inputs.text("max-build-minutes"), "max-build-minutes", 20.0),
            max_failure_rate=parse_fraction(inputs.text("max-failure-rate"), "max-failure-rate", 0.05),
            max_pull_failure_rate=parse_fraction(inputs.text("max-pull-failure-rate"), "max-pull-failure-rate", 0.10),
            max_build_time_increase=parse_fraction(
                inputs.text("max-build-time-increase"), "max-build-time-increase", 0.20
            ),
            max_failure_rate_increase=parse_fraction(
                inputs.text("max-failure-rate-increase"), "max-failure-rate-increase", 0.03
            ),
        ),
        fail_on_threshold=inputs.boolean("fail-on-threshold", default=False),
        min_sample=parse_count(inputs.text("min-sample"), "min-sample", 10, low=1, high=1_000_000),
        max_requests=parse_count(inputs.text("max-requests"), "max-requests", 600, low=1, high=1_000_000),
        from_dump=from_dump,
        dump=Path(dump_text) if dump_text else None,
        prometheus_file=Path(prometheus) if prometheus else None,
        now=now,
        since_span=since_span,
        since_text=since_text,
        until_text=until_text,
    )
    if from_dump is not None and settings.dump is not None:
        raise gha.InputError("dump", "empty when from-dump is set (a dump is written from a live run)", dump_text)
    return settings


# ------------------------------------------------------------------------------------------ files


def write_atomically(path: Path, text: str, what: str) -> Path:
    target = path if path.is_absolute() else Path.cwd() / path
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(f".{target.name}.{os.getpid()}.partial")
        partial.write_text(text, encoding="utf-8")
        partial.replace(target)
    except OSError as exc:
        raise gha.ActionFailure(f"Cannot write the {what}", f"{target} cannot be written: {exc.strerror}.") from None
    return target


def shown_path(target: Path, env: Mapping[str, str]) -> str:
    """Relative to the workspace when inside it (what a later upload step names), else absolute."""
    return gha.workspace_relative(str(target), env)


def report_name(until: float) -> str:
    return f"ci-metrics-{datetime.fromtimestamp(until, UTC).strftime('%Y%m%d')}.json"


# ------------------------------------------------------------------------------------------ the run


def main(env: Mapping[str, str], now: float | None = None) -> int:
    settings = parse_settings(env, time.time() if now is None else now)
    from dataclasses import replace

    from charon_ci import github
    from charon_ci.metrics import baseline, compare, history, report, state, stats, storage, thresholds
    from charon_ci.metrics.dump import DumpFetcher, dump_document, load_dump

    dump = load_dump(settings.from_dump) if settings.from_dump is not None else None
    repository = settings.repository
    if dump is not None:
        if repository and dump.repository and repository != dump.repository:
            raise gha.InputError("repository", f"empty or the dump's repository ({dump.repository})", repository)
        repository = repository or dump.repository
        until = settings.until if settings.until is not None else dump.until
        since = settings.since
        if since is None:
            since = until - settings.since_span if settings.since_span is not None else dump.since
        if until <= since:
            raise gha.InputError("until", f"a time after since ({report_time(since)})", settings.until_text)
    elif settings.since is not None and settings.until is not None:
        since, until = settings.since, settings.until
    else:  # parse_settings always sets both for a live run
        raise gha.ActionFailure("charon-ci internal error", "the window was not decided")
    settings = replace(settings, repository=repository, since=since, until=until)
    client = None if dump is not None else github.GithubClient(settings.github_token, api_url=settings.api_url)

    previous_state = baseline.load(settings.state, client, repository, env) if settings.state else None
    previous_base = baseline.load(settings.baseline, client, repository, env) if settings.baseline else None
    reusable = None
    previous = previous_state or previous_base
    if previous is not None:
        input_name = "state" if previous_state is not None else "baseline"
        if previous.document.get("repository") != repository:
            if input_name == "state":
                raise gha.InputError("state", f"a metrics JSON of {repository}", previous.label)
            note = f"it measured {previous.document.get('repository')!r}, not this repository"
        else:
            try:
                reusable, note = state.parse_records(previous.document.get("records"), settings.fingerprint())
            except (ValueError, TypeError, KeyError) as exc:
                raise gha.InputError(
                    input_name,
                    f"{baseline.accepted()}; its records: {exc}",
                    previous.label,
                ) from None
        gha.info(f"previous metrics from {previous.label}" + (f": {note}" if note else ""))

    fetcher: history.Fetcher
    if dump is not None:
        fetcher = DumpFetcher(dump)
    elif client is not None:
        fetcher = history.ApiFetcher(client, repository, settings.max_requests)
    else:
        raise gha.ActionFailure("charon-ci internal error", "neither a dump nor an API client")
    collected = history.collect(fetcher, settings, reusable, since, until)

    storage_facts: history.StorageFacts | None = None
    package = settings.package
    if dump is not None:
        if dump.storage is not None and (not package or package == dump.package):
            storage_facts, package = dump.storage, dump.package
    elif package and client is not None:
        with gha.group(f"Registry storage of {settings.owner}/{package}"):
            storage_facts = history.fetch_storage(settings, client, env, reusable.manifests if reusable else {})
    measured_storage = (
        storage.measure(
            package, storage_facts.versions, storage_facts.manifests, storage_facts.unreadable, settings.storage_policy
        )
        if storage_facts is not None
        else None
    )

    started = time.process_time()
    metrics = stats.compute(
        collected.history,
        collected.roles,
        settings.build_job_pattern,
        settings.pull_step_pattern,
        settings.prune_step_pattern,
    )
    gha.debug(f"measured {len(collected.history.runs)} runs in {time.process_time() - started:.3f} s CPU")
    reading = client.rate_limit if client is not None else None
    usage = report.Usage(
        api_requests=client.stats.total if client is not None else 0,
        max_requests=settings.max_requests,
        rate_remaining=reading.remaining if reading is not None else None,
        rate_limit=reading.limit if reading is not None else None,
        runs_read=collected.read,
        runs_reused=collected.reused,
        registry_reads=storage_facts.manifest_reads if storage_facts is not None else 0,
        manifests_reused=storage_facts.reused_manifests if storage_facts is not None else 0,
        offline=dump is not None,
    )
    records = state.records_json(
        collected.history,
        collected.roles,
        settings.fingerprint(),
        storage_facts.manifests if storage_facts is not None else {},
        (settings.pull_step_pattern, settings.prune_step_pattern),
    )

    def build(verdicts: list[thresholds.Verdict], deltas: list[compare.Delta] | None) -> dict[str, Any]:
        return report.document(
            history=collected.history,
            roles=collected.roles,
            metrics=metrics,
            storage=measured_storage,
            verdicts=verdicts,
            deltas=deltas,
            baseline_label=previous_base.label if previous_base else None,
            usage=usage,
            settings_json=settings_json(settings),
            generated_at=settings.now,
            records=records,
            pull_sample=settings.pull_sample,
        )

    deltas = (
        compare.compare(previous_base.document, build([], None), settings.min_sample)
        if previous_base is not None
        else None
    )
    verdicts = thresholds.judge(metrics, settings.thresholds, deltas)
    doc = build(verdicts, deltas)

    target = write_atomically(
        settings.report_dir / report_name(until), json.dumps(doc, indent=1) + "\n", "metrics report"
    )
    if settings.dump is not None:
        dumped = dump_document(collected.history, storage_facts, package)
        write_atomically(settings.dump, json.dumps(dumped) + "\n", "dump")
    if settings.prometheus_file is not None:
        write_atomically(settings.prometheus_file, report.prometheus_text(doc), "Prometheus file")
    gha.append_summary(report.summary_markdown(doc), env)
    announce(doc, settings)
    write_outputs(report.outputs(doc, shown_path(target, env)), env)
    breaches = int(doc["breaches"])
    return 1 if settings.fail_on_threshold and breaches else 0


def report_time(moment: float) -> str:
    return datetime.fromtimestamp(moment, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def announce(doc: Mapping[str, Any], settings: MetricsSettings) -> None:
    """The headline in the log, and one annotation per thing a person should look at."""
    build = doc["build_time"]["attempts"]
    failures = doc["failure_rate"]
    gha.info(
        f"build time: median {_minutes_text(build['median'])} over {build['n']} successful attempts; failure rate "
        f"{_percent_text(failures['rate'])} ({failures['failed']} of {failures['decided']}); "
        f"{doc['requests']['api_requests']} API requests"
    )
    announce_failure = gha.error if settings.fail_on_threshold else gha.warning
    for verdict in doc["thresholds"]:
        if verdict["breached"]:
            announce_failure(verdict["message"], title=verdict["title"])
    comparison = doc.get("comparison")
    if comparison:
        small = [m for m in comparison["measures"] if m["too_small"] and m["change"] is not None]
        if small:
            gha.warning(
                "; ".join(f"{m['label']} (n {m['n_before']} before, {m['n_after']} after)" for m in small)
                + f": fewer than {settings.min_sample} on a side, not compared",
                title="Baseline sample too small",
            )
    listing = doc["listing"]
    if listing["cut"]:
        gha.warning(f"{listing['cut']} runs could not be listed: {listing['cut_reason']}", title="Runs list cut")
    unread = doc["unread"]
    from charon_ci.metrics.history import BUDGET

    if unread.get(BUDGET):
        gha.warning(
            f"{unread[BUDGET]} runs were not looked into: the request budget ({settings.max_requests}, max-requests) "
            "or the rate limit ran out; the next run with this report as state reads them",
            title="Request budget reached",
        )


def _minutes_text(seconds: Any) -> str:
    return "-" if not isinstance(seconds, int | float) else f"{seconds / 60.0:.1f} min"


def _percent_text(value: Any) -> str:
    return "-" if not isinstance(value, int | float) else f"{value * 100:.1f} %"


def settings_json(settings: MetricsSettings) -> dict[str, Any]:
    return {
        **settings.fingerprint(),
        "build_job_pattern": settings.build_job_pattern.pattern,
        "pull_sample": settings.pull_sample,
        "min_sample": settings.min_sample,
        "max_requests": settings.max_requests,
        "storage_patterns": [rule.pattern for rule in settings.storage_policy.rules],
        "protect": [rule.source for rule in settings.storage_policy.protect],
        "thresholds": {
            "max_build_minutes": settings.thresholds.max_build_minutes,
            "max_failure_rate": settings.thresholds.max_failure_rate,
            "max_pull_failure_rate": settings.thresholds.max_pull_failure_rate,
            "max_build_time_increase": settings.thresholds.max_build_time_increase,
            "max_failure_rate_increase": settings.thresholds.max_failure_rate_increase,
        },
        "fail_on_threshold": settings.fail_on_threshold,
    }


def write_outputs(values: Mapping[str, str], env: Mapping[str, str]) -> None:
    printed = gha.write_outputs(values, env)
    if printed is not None:
        sys.stdout.write(json.dumps(printed, indent=2) + "\n")


def run(argv: Sequence[str]) -> int:
    return gha.run_command("metrics", HELP, argv, main)

