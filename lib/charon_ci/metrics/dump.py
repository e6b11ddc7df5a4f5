"""Offline metrics: `dump` saves what the API answered (trimmed to the fields read), `from-dump` recomputes
from such a file with no network at all, so a team can change thresholds or patterns and compute again.

The file holds GitHub's own objects (`workflow`, `workflow-run`, attempt, `job` with every step, package
`version`), so one assembled by hand from `gh api` output works too, plus the manifest facts read from the
registry. Runs whose jobs are not in the file are reported as not looked into. A dump written by a run
that had a state holds the runs it reused as the state kept them (only their pull and prune steps).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from charon_ci import gha
from charon_ci.metrics.history import StorageFacts
from charon_ci.metrics.model import (
    Attempt,
    History,
    Job,
    Listing,
    ListingQuery,
    Run,
    Workflow,
    format_time,
    parse_attempt,
    parse_job,
    parse_run,
    parse_time,
    parse_workflow,
)
from charon_ci.metrics.state import manifest_json, parse_manifest
from charon_ci.prune.listing import parse_versions
from charon_ci.prune.model import PackageVersion

FORMAT = "charon-ci-metrics-dump"
VERSION = 1
MAX_DUMP_BYTES = 1024 * 1024 * 1024
NOT_IN_DUMP = "not in the dump"


def dump_document(history: History, storage: StorageFacts | None, package: str) -> dict[str, Any]:
    read = sorted(history.jobs)
    return {
        "format": FORMAT,
        "version": VERSION,
        "repository": history.repository,
        "since": format_time(history.since),
        "until": format_time(history.until),
        "listing": history.listing.as_json(),
        "workflows": [flow.as_json() for flow in sorted(history.workflows.values(), key=lambda w: w.id)],
        "runs": [run.as_json() for run in history.runs],
        "read_runs": read,
        "attempts": [
            attempt.as_json() for run_id in read for _, attempt in sorted(history.attempts.get(run_id, {}).items())
        ],
        "jobs": [job.as_json() for run_id in read for job in history.jobs[run_id]],
        "package": None
        if storage is None
        else {
            "name": package,
            "versions": [_version_json(v) for v in storage.versions],
            "manifests": {d: manifest_json(f) for d, f in sorted(storage.manifests.items())},
            "unreadable": dict(sorted(storage.unreadable.items())),
        },
    }


def _version_json(version: PackageVersion) -> dict[str, Any]:
    return {
        "id": version.id,
        "name": version.digest,
        "created_at": format_time(version.created_at.timestamp()),
        "metadata": {"package_type": "container", "container": {"tags": list(version.tags)}},
    }


@dataclass
class Dump:
    repository: str
    since: float
    until: float
    listing: Listing
    workflows: dict[int, Workflow]
    runs: list[Run]
    read_runs: set[int]
    attempts: dict[int, dict[int, Attempt]]
    jobs: dict[int, list[Job]]
    package: str = ""
    storage: StorageFacts | None = None
    notes: list[str] = field(default_factory=list)


def load_dump(path: Path) -> Dump:
    accepted = f"a file written by charon-ci metrics' dump input (format '{FORMAT}' version {VERSION})"
    try:
        with path.open("rb") as handle:
            data = handle.read(MAX_DUMP_BYTES + 1)
    except OSError as exc:
        raise gha.InputError("from-dump", f"{accepted} (cannot read it: {exc.strerror})", str(path)) from None
    if len(data) > MAX_DUMP_BYTES:
        raise gha.InputError("from-dump", f"{accepted} of at most 1 GiB", str(path))
    try:
        body = json.loads(data.decode("utf-8"))
        if not isinstance(body, dict) or body.get("format") != FORMAT:
            raise ValueError("not a metrics dump")
        if body.get("version") != VERSION:
            raise ValueError(f"dump version {body.get('version')!r}, this charon-ci reads {VERSION}")
        return _parse(body)
    except (UnicodeDecodeError, ValueError, TypeError, AttributeError, KeyError) as exc:
        raise gha.InputError("from-dump", f"{accepted}; {exc}", str(path)) from None
    except RecursionError:
        raise gha.InputError("from-dump", f"{accepted}; nested too deeply", str(path)) from None


def _parse(body: Mapping[str, Any]) -> Dump:
    workflows = {flow.id: flow for flow in (parse_workflow(item) for item in body.get("workflows") or [])}
    runs = [parse_run(item) for item in body.get("runs") or []]
    attempts: dict[int, dict[int, Attempt]] = {}
    for item in body.get("attempts") or []:
        attempt = parse_attempt(item)
        attempts.setdefault(attempt.run_id, {})[attempt.number] = attempt
    jobs: dict[int, list[Job]] = {}
    for item in body.get("jobs") or []:
        job = parse_job(item)
        jobs.setdefault(job.run_id, []).append(job)
    read = body.get("read_runs")
    read_runs = {int(x) for x in read} if isinstance(read, list) else set(jobs)
    listing = Listing()
    raw_listing = body.get("listing")
    if isinstance(raw_listing, Mapping):
        for query in raw_listing.get("queries") or []:
            listing.queries.append(
                ListingQuery(
                    str(query["created"]), int(query["total_count"]), int(query["fetched"]), int(query["pages"])
                )
            )
        listing.cut = int(raw_listing.get("cut") or 0)
        listing.cut_reason = str(raw_listing.get("cut_reason") or "")
    dump = Dump(
        repository=str(body.get("repository") or ""),
        since=parse_time(body.get("since"), "since"),
        until=parse_time(body.get("until"), "until"),
        listing=listing,
        workflows=workflows,
        runs=runs,
        read_runs=read_runs,
        attempts=attempts,
        jobs=jobs,
    )
    package = body.get("package")
    if isinstance(package, Mapping):
        versions = parse_versions(package.get("versions") or [], "the dump's package versions")
        manifests = {str(d): parse_manifest(str(d), f) for d, f in (package.get("manifests") or {}).items()}
        unreadable = {str(d): str(w) for d, w in (package.get("unreadable") or {}).items()}
        dump.package = str(package.get("name") or "")
        dump.storage = StorageFacts(versions, manifests, unreadable)
    return dump


@dataclass
class DumpFetcher:
    """`history.Fetcher` over a dump: what the dump holds, and nothing else."""

    dump: Dump

    @property
    def unavailable(self) -> str:
        return NOT_IN_DUMP

    def workflows(self) -> dict[int, Workflow]:
        return dict(self.dump.workflows)

    def list_runs(self, since: float, until: float) -> tuple[list[Run], Listing]:
        if since < self.dump.since or until > self.dump.until:
            raise gha.InputError(
                "since" if since < self.dump.since else "until",
                f"a window inside the dump's ({format_time(self.dump.since)} to {format_time(self.dump.until)})",
                format_time(since if since < self.dump.since else until),
            )
        runs = sorted(
            (run for run in self.dump.runs if since <= run.created_at <= until + 0.999),
            key=lambda run: (run.created_at, run.id),
        )
        same_window = (since, until) == (self.dump.since, self.dump.until)
        return runs, (
            self.dump.listing
            if same_window
            else Listing(cut=self.dump.listing.cut, cut_reason=self.dump.listing.cut_reason)
        )

    def can_afford(self, requests: int) -> bool:
        return True

    def jobs(self, run: Run) -> tuple[Job, ...] | None:
        if run.id not in self.dump.read_runs:
            return None
        return tuple(self.dump.jobs.get(run.id, ()))

    def attempt(self, run: Run, number: int) -> Attempt | None:
        return self.dump.attempts.get(run.id, {}).get(number)
