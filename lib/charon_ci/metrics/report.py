"""What a metrics run tells people: the JSON document (schema version 1), the job summary in Markdown with
charts GitHub renders itself (mermaid `xychart-beta`, no image service), the outputs, and the optional
Prometheus text exposition. Pure formatting over the computed measures.

Workflow, job and branch names come from workflow files a pull request may have changed: every one is
escaped before it reaches the summary (Markdown, HTML, mermaid) or a Prometheus label.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from charon_ci.metrics.compare import Delta
from charon_ci.metrics.model import History, Workflow, format_time
from charon_ci.metrics.roles import Roles
from charon_ci.metrics.stats import Metrics, StepRate
from charon_ci.metrics.storage import Storage
from charon_ci.metrics.thresholds import Verdict

SCHEMA = "charon-ci/ci-metrics"
SCHEMA_VERSION = 1
SCHEMA_URL = "https://github.com/wikid82/charon-ci/blob/main/action-metrics/ci-metrics.schema.json"
SUMMARY_ROWS = 20


@dataclass
class Usage:
    """Requests this run made, and what it avoided."""

    api_requests: int
    max_requests: int
    rate_remaining: int | None
    rate_limit: int | None
    runs_read: int
    runs_reused: int
    registry_reads: int = 0
    manifests_reused: int = 0
    offline: bool = False

    def as_json(self) -> dict[str, Any]:
        return {
            "api_requests": self.api_requests,
            "max_requests": self.max_requests,
            "rate_remaining": self.rate_remaining,
            "rate_limit": self.rate_limit,
            "runs_read": self.runs_read,
            "runs_reused": self.runs_reused,
            "registry_manifest_reads": self.registry_reads,
            "manifests_reused": self.manifests_reused,
            "offline": self.offline,
        }


def _round(value: float | None, digits: int = 6) -> float | None:
    return None if value is None else round(value, digits)


def _workflows(ids: frozenset[int], workflows: Mapping[int, Workflow]) -> list[dict[str, Any]]:
    return [workflows[i].as_json() if i in workflows else {"id": i, "name": "", "path": ""} for i in sorted(ids)]


def _step_rate(rate: StepRate, sample: int | None) -> dict[str, Any]:
    return {
        "rate": _round(rate.rate),
        "n": rate.success + rate.failed,
        "success": rate.success,
        "failed": rate.failed,
        "steps": dict(sorted(rate.steps.items())),
        "runs": rate.runs,
        "runs_read": rate.runs_read,
        "sample": sample,
        "workflows": rate.workflows,
    }


def document(
    *,
    history: History,
    roles: Roles,
    metrics: Metrics,
    storage: Storage | None,
    verdicts: Sequence[Verdict],
    deltas: Sequence[Delta] | None,
    baseline_label: str | None,
    usage: Usage,
    settings_json: Mapping[str, Any],
    generated_at: float,
    records: Mapping[str, Any],
    pull_sample: int | None,
) -> dict[str, Any]:
    build = metrics.build
    failures = metrics.failures
    per_commit = metrics.builds_per_commit
    ci_time = metrics.ci_time
    return {
        "schema": SCHEMA,
        "schema_version": SCHEMA_VERSION,
        "$schema": SCHEMA_URL,
        "generated_at": format_time(generated_at),
        "repository": history.repository,
        "window": {
            "since": format_time(history.since),
            "until": format_time(history.until),
            "days": round((history.until - history.since) / 86400.0, 3),
        },
        "settings": dict(settings_json),
        "workflows": {
            "build": _workflows(roles.build, history.workflows),
            "build_jobs": _workflows(roles.build_jobs, history.workflows),
            "pull": _workflows(roles.pull, history.workflows),
            "prune": _workflows(roles.prune, history.workflows),
            "recognised": {str(k): v for k, v in sorted(roles.recognised.items())},
        },
        "listing": {"runs": len(history.runs), **history.listing.as_json()},
        "requests": usage.as_json(),
        "unread": dict(sorted(metrics.unread.items())),
        "build_time": {
            "unit": "seconds",
            "runs": metrics.build_runs,
            "runs_read": metrics.build_runs_read,
            "attempts_read": metrics.build_attempts_read,
            "attempts": build.attempts.as_json(),
            "queue": build.queue.as_json(),
            "execution": build.execution.as_json(),
            "slowest_jobs": [{"name": name, **summary.as_json()} for name, summary in build.slowest_jobs],
            "not_timed": dict(sorted(build.not_timed.items())),
            "anomalies": dict(sorted(build.anomalies.items())),
        },
        "failure_rate": {
            "rate": _round(failures.rate),
            "failed": failures.failed,
            "decided": failures.decided,
            "completed": sum(failures.conclusions.values()),
            "attempt_conclusions": dict(sorted(failures.conclusions.items())),
            "run_conclusions": dict(sorted(failures.run_conclusions.items())),
            "flaky_runs": failures.flaky_runs,
            "flaky_commits": failures.flaky_commits,
        },
        "builds_per_commit": {
            "commits": per_commit.summary.n,
            "mean": _round(per_commit.summary.mean),
            "median": _round(per_commit.summary.median),
            "max": per_commit.summary.max,
            "distribution": {str(k): v for k, v in per_commit.distribution.items()},
            "most": [
                {"head_sha": sha, "builds": count}
                for sha, count in sorted(per_commit.per_commit.items(), key=lambda item: (-item[1], item[0]))[:10]
            ],
        },
        "pull_success": _step_rate(metrics.pulls, pull_sample),
        "cleanup_success": _step_rate(metrics.cleanups, None),
        "ci_time_per_pr": {
            "unit": "seconds",
            **ci_time.summary.as_json(),
            "in_progress": ci_time.in_progress,
            "ends_from_jobs": ci_time.ends_from_jobs,
            "ends_from_updated_at": ci_time.ends_from_updated_at,
            "commits": [
                {"head_sha": c.head_sha, "label": c.label, "runs": c.runs, "seconds": round(c.seconds, 3)}
                for c in ci_time.commits
            ],
        },
        "daily": [
            {
                "date": day.date,
                "builds": day.builds,
                "median_seconds": _round(day.median_seconds, 3),
                "failed": day.failed,
                "completed": day.completed,
            }
            for day in metrics.daily
        ],
        "workflow_runs": [
            {
                "id": w.workflow_id,
                "name": w.name,
                "runs": w.runs,
                "completed": w.completed,
                "conclusions": dict(sorted(w.conclusions.items())),
            }
            for w in metrics.workflows
        ],
        "storage": storage.as_json() if storage is not None else None,
        "thresholds": [verdict.as_json() for verdict in verdicts],
        "breaches": sum(1 for verdict in verdicts if verdict.breached),
        "comparison": None
        if deltas is None
        else {"baseline": baseline_label, "measures": [delta.as_json() for delta in deltas]},
        "records": dict(records),
    }


# ------------------------------------------------------------------------------------------ outputs


def _minutes(seconds: Any) -> str:
    return "" if not isinstance(seconds, int | float) else f"{seconds / 60.0:.2f}"


def _fraction(value: Any) -> str:
    return "" if not isinstance(value, int | float) else f"{value:.4f}"


def outputs(doc: Mapping[str, Any], report_path: str) -> dict[str, str]:
    """The action's outputs; a measure with no sample is an empty string, never a made-up 0."""
    build = doc["build_time"]
    storage = doc.get("storage")
    per_commit = doc["builds_per_commit"]
    return {
        "report-path": report_path,
        "build-time-median-minutes": _minutes(build["attempts"]["median"]),
        "build-time-p95-minutes": _minutes(build["attempts"]["p95"]),
        "build-time-mean-minutes": _minutes(build["attempts"]["mean"]),
        "queue-time-median-minutes": _minutes(build["queue"]["median"]),
        "failure-rate": _fraction(doc["failure_rate"]["rate"]),
        "builds-per-commit": "" if per_commit["mean"] is None else f"{per_commit['mean']:.3f}",
        "pull-success-rate": _fraction(doc["pull_success"]["rate"]),
        "cleanup-success-rate": _fraction(doc["cleanup_success"]["rate"]),
        "storage-bytes": "" if not storage else str(storage["total_bytes"]),
        "breaches": str(doc["breaches"]),
        "requests-used": str(doc["requests"]["api_requests"]),
        "runs-cut": str(doc["listing"]["cut"]),
    }


# ------------------------------------------------------------------------------------------ Markdown


def md(text: str) -> str:
    """Untrusted text for Markdown (table cells too): no HTML, links, emphasis, code or column breaks."""
    flat = " ".join(str(text).split())
    out = []
    for ch in flat:
        if ch in "\\`*_{}[]()#+-.!|~>":
            out.append("\\" + ch)
        elif ch == "<":
            out.append("&lt;")
        elif ch == "&":
            out.append("&amp;")
        elif ch == "@":
            out.append("@\u200b")  # no mentions
        else:
            out.append(ch)
    return "".join(out)


def _mins(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds / 60.0:.1f} min"


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.1f} %"


def _counts(counts: Mapping[str, int]) -> str:
    return ", ".join(f"{md(k)} {v}" for k, v in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))) or "none"


def human_bytes(count: int | None) -> str:
    if count is None:
        return "-"
    size = float(count)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            return f"{int(size)} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{count} B"


def _count(number: float, noun: str) -> str:
    return f"{number:g} {noun}" + ("" if number == 1 else "s")


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}".rstrip("0").rstrip(".")


def _summary_cell(summary: Mapping[str, Any]) -> str:
    if not summary["n"]:
        return "-"
    return (
        f"median {_mins(summary['median'])}, p90 {_mins(summary['p90'])}, p95 {_mins(summary['p95'])}, "
        f"mean {_mins(summary['mean'])}, max {_mins(summary['max'])}"
    )


def _chart_number(value: float) -> str:
    return f"{value:.1f}" if math.isfinite(value) else "0"


def _quoted(label: str) -> str:
    return '"' + "".join(ch for ch in label if ch.isalnum() or ch in "-:/ ") + '"'


def mermaid_charts(daily: Sequence[Mapping[str, Any]]) -> list[str]:
    """Two xychart-beta blocks: median build time per day (days with a build), failed attempts per day."""
    blocks: list[str] = []
    timed = [day for day in daily if day["median_seconds"] is not None]
    if timed:
        values = [day["median_seconds"] / 60.0 for day in timed]
        top = max(1.0, math.ceil(max(values) * 1.1))
        blocks.append(
            "```mermaid\nxychart-beta\n"
            '    title "Median build time per day (minutes)"\n'
            f"    x-axis [{', '.join(_quoted(day['date'][5:]) for day in timed)}]\n"
            f'    y-axis "minutes" 0 --> {top:g}\n'
            f"    line [{', '.join(_chart_number(v) for v in values)}]\n```"
        )
    if daily:
        failed = [day["failed"] for day in daily]
        top_failed = max(1, *failed)
        blocks.append(
            "```mermaid\nxychart-beta\n"
            '    title "Failed build attempts per day"\n'
            f"    x-axis [{', '.join(_quoted(day['date'][5:]) for day in daily)}]\n"
            f'    y-axis "attempts" 0 --> {top_failed}\n'
            f"    bar [{', '.join(str(v) for v in failed)}]\n```"
        )
    return blocks


def summary_markdown(doc: Mapping[str, Any]) -> str:
    window = doc["window"]
    build = doc["build_time"]
    failures = doc["failure_rate"]
    per_commit = doc["builds_per_commit"]
    pulls = doc["pull_success"]
    cleanups = doc["cleanup_success"]
    ci_time = doc["ci_time_per_pr"]
    storage = doc.get("storage")
    lines = [
        f"## CI metrics for {md(doc['repository'])}",
        "",
        f"Runs created {window['since']} to {window['until']} ({_count(round(window['days'], 1), 'day')}): "
        f"{_count(doc['listing']['runs'], 'run')} listed.",
        "",
        "| Measure | Value | Sample |",
        "|---|---|---|",
        f"| Build time (successful attempts) | {_summary_cell(build['attempts'])} | {build['attempts']['n']} attempts "
        f"of {build['runs_read']} build runs read ({build['runs']} listed) |",
        f"| Queue time (build jobs) | {_summary_cell(build['queue'])} | {build['queue']['n']} jobs |",
        f"| Execution time (build jobs) | {_summary_cell(build['execution'])} | {build['execution']['n']} jobs |",
        f"| Build failure rate | {_pct(failures['rate'])} ({failures['failed']} failed of {failures['decided']} "
        f"decided) | {failures['completed']} completed attempts: {_counts(failures['attempt_conclusions'])} |",
        f"| Flaky (failed, then passed on a re-run) | {_count(len(failures['flaky_runs']), 'run')} on "
        f"{_count(len(failures['flaky_commits']), 'commit')} | {failures['completed']} completed attempts |",
        f"| Builds per commit | mean {_number(per_commit['mean'])}, max {_number(per_commit['max'])} | "
        f"{_count(per_commit['commits'], 'commit')} |",
        f"| Image pull success | {_pct(pulls['rate'])} ({pulls['success']} of {pulls['n']} pulls) | "
        f"{pulls['runs_read']} of {pulls['runs']} pull runs read; steps: {_counts(pulls['steps'])} |",
        f"| Cleanup success | {_pct(cleanups['rate'])} ({cleanups['success']} of {cleanups['n']}) | "
        f"{cleanups['runs_read']} of {cleanups['runs']} prune runs read |",
        f"| CI time per PR head commit | {_summary_cell(ci_time)} | {ci_time['n']} commits "
        f"({ci_time['in_progress']} still running) |",
    ]
    if storage:
        lines.append(
            f"| Registry storage | {human_bytes(storage['total_bytes'])} | {storage['versions']} versions of "
            f"{md(storage['package'])} |"
        )
    lines.append("")

    breached = [t for t in doc["thresholds"] if t["breached"]]
    if breached:
        lines += ["### Thresholds crossed", ""] + [
            f"- :warning: **{md(t['title'])}**: {md(t['message'])}" for t in breached
        ]
        lines.append("")
    notes = []
    if doc["listing"]["cut"]:
        notes.append(f"{doc['listing']['cut']} runs could not be listed: {md(doc['listing']['cut_reason'])}.")
    for why, count in doc["unread"].items():
        notes.append(f"{count} runs not looked into: {md(why)}.")
    if build["anomalies"]:
        notes.append(f"Left out as GitHub clock anomalies: {_counts(build['anomalies'])}.")
    if notes:
        lines += ["> [!NOTE]"] + [f"> {note}" for note in notes] + [""]

    charts = mermaid_charts(doc["daily"])
    if charts:
        lines += ["### Per day", ""]
        for block in charts:
            lines += [block, ""]

    if build["slowest_jobs"]:
        lines += [
            "### Slowest build jobs (execution time)",
            "",
            "| Job | n | median | p95 | max |",
            "|---|---|---|---|---|",
        ]
        for job in build["slowest_jobs"]:
            lines.append(
                f"| {md(job['name'])} | {job['n']} | {_mins(job['median'])} | {_mins(job['p95'])} | "
                f"{_mins(job['max'])} |"
            )
        lines.append("")

    if storage:
        lines += [
            "### Registry storage by tag pattern",
            "",
            "| Group | Versions | Manifests | Bytes | Only this group |",
            "|---|---|---|---|---|",
        ]
        for group in storage["groups"]:
            lines.append(
                f"| {md(group['name'])} | {group['versions']} | {group['manifests']} | {human_bytes(group['bytes'])} | "
                f"{human_bytes(group['exclusive_bytes'])} |"
            )
        lines += [
            "",
            "Each blob is counted once per group and once in the total; a layer shared by two groups "
            "is in both groups' bytes and in neither's \"only this group\".",
            "",
        ]

    comparison = doc.get("comparison")
    if comparison:
        lines += [
            f"### Compared with the baseline ({md(comparison['baseline'] or '')})",
            "",
            "| Measure | Before | After | Change | n before | n after | |",
            "|---|---|---|---|---|---|---|",
        ]
        for delta in comparison["measures"]:
            lines.append(
                f"| {md(delta['label'])} | {_value(delta['before'], delta['unit'])} | "
                f"{_value(delta['after'], delta['unit'])} | {_change(delta)} | {delta['n_before']} | "
                f"{delta['n_after']} | {delta['verdict']} |"
            )
        lines.append("")

    per_workflow = doc["workflow_runs"]
    if per_workflow:
        lines += ["### Runs per workflow (latest attempt)", "", "| Workflow | Runs | Conclusions |", "|---|---|---|"]
        for flow in sorted(per_workflow, key=lambda w: -w["runs"])[:SUMMARY_ROWS]:
            lines.append(f"| {md(flow['name'])} | {flow['runs']} | {_counts(flow['conclusions'])} |")
        lines.append("")

    usage = doc["requests"]
    if usage["offline"]:
        lines.append("Computed offline from a dump: no requests made.")
    else:
        rate = (
            f"; rate limit: {usage['rate_remaining']} of {usage['rate_limit']} left"
            if usage["rate_remaining"] is not None
            else ""
        )
        lines.append(
            f"API requests: {usage['api_requests']} (budget {usage['max_requests']}){rate}. Jobs read for "
            f"{usage['runs_read']} runs; {usage['runs_reused']} runs taken from the previous metrics unchanged."
        )
    lines.append("")
    return "\n".join(lines)


def _value(value: float | None, unit: str) -> str:
    if value is None:
        return "-"
    if unit == "seconds":
        return _mins(value)
    if unit == "fraction":
        return _pct(value)
    if unit == "bytes":
        return human_bytes(int(value))
    return f"{value:.2f}"


def _change(delta: Mapping[str, Any]) -> str:
    if delta["change"] is None:
        return "-"
    relative = delta["relative_change"]
    if delta["unit"] == "fraction":
        text = f"{delta['change'] * 100:+.1f} points"
    elif delta["unit"] == "seconds":
        text = f"{delta['change'] / 60.0:+.1f} min"
    elif delta["unit"] == "bytes":
        text = ("-" if delta["change"] < 0 else "+") + human_bytes(int(abs(delta["change"])))
    else:
        text = f"{delta['change']:+.2f}"
    return text + (f" ({relative * 100:+.1f} %)" if relative is not None else "")


# ------------------------------------------------------------------------------------------ Prometheus


def _label(value: str) -> str:
    return str(value).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def prometheus_text(doc: Mapping[str, Any]) -> str:
    """The text exposition format (version 0.0.4), for a node-exporter textfile collector or a push."""
    repo = f'repository="{_label(doc["repository"])}"'
    lines: list[str] = []

    def summary(name: str, help_text: str, data: Mapping[str, Any]) -> None:
        lines.append(f"# HELP {name} {help_text}")
        lines.append(f"# TYPE {name} summary")
        if data["n"]:
            for quantile, key in (("0.5", "median"), ("0.9", "p90"), ("0.95", "p95")):
                lines.append(f'{name}{{{repo},quantile="{quantile}"}} {data[key]}')
            lines.append(f"{name}_sum{{{repo}}} {round(data['mean'] * data['n'], 3)}")
        lines.append(f"{name}_count{{{repo}}} {data['n']}")

    def gauge(name: str, help_text: str, value: Any, labels: str = "") -> None:
        if not any(line.startswith(f"# TYPE {name} ") for line in lines):
            lines.append(f"# HELP {name} {help_text}")
            lines.append(f"# TYPE {name} gauge")
        if isinstance(value, int | float) and not isinstance(value, bool):
            lines.append(f"{name}{{{repo}{labels}}} {value}")

    summary("charon_ci_build_time_seconds", "Build time of successful build attempts.", doc["build_time"]["attempts"])
    summary("charon_ci_queue_time_seconds", "Queue time of build jobs.", doc["build_time"]["queue"])
    summary("charon_ci_pr_ci_time_seconds", "CI time per pull request head commit.", doc["ci_time_per_pr"])
    gauge("charon_ci_build_failure_rate", "Failed / decided build attempts.", doc["failure_rate"]["rate"])
    gauge("charon_ci_builds_per_commit", "Mean build jobs per commit.", doc["builds_per_commit"]["mean"])
    gauge("charon_ci_pull_success_rate", "Successful image pulls / pulls.", doc["pull_success"]["rate"])
    gauge("charon_ci_cleanup_success_rate", "Successful cleanups / cleanups.", doc["cleanup_success"]["rate"])
    gauge("charon_ci_threshold_breaches", "Thresholds crossed.", doc["breaches"])
    gauge("charon_ci_runs_listed", "Workflow runs in the window.", doc["listing"]["runs"])
    gauge("charon_ci_runs_cut", "Runs GitHub counted but would not list.", doc["listing"]["cut"])
    storage = doc.get("storage")
    if storage:
        gauge("charon_ci_storage_bytes", "Registry bytes, each blob once.", storage["total_bytes"])
        for group in storage["groups"]:
            gauge(
                "charon_ci_storage_group_bytes",
                "Registry bytes reached by a tag group.",
                group["bytes"],
                f',group="{_label(group["name"])}"',
            )
            gauge(
                "charon_ci_storage_group_versions",
                "Package versions in a tag group.",
                group["versions"],
                f',group="{_label(group["name"])}"',
            )
    return "\n".join(lines) + "\n"
