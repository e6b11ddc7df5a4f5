"""The `records` section of a metrics JSON: what the next run may reuse instead of asking GitHub again.

- runs whose jobs were read (completed ones only): their attempts and jobs, steps trimmed to those the pull
  and prune patterns match (the only steps any measure reads);
- the pull / prune recognition of each workflow looked at;
- manifest facts by digest (a digest names its content: these never go stale).
Runs and recognitions are reused only under the same `fingerprint` (workflows and patterns); a run is
reused only while GitHub still shows it at the same attempt, completed (charon_ci.metrics.history).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from charon_ci.metrics.model import (
    History,
    Reusable,
    RunRecord,
    parse_attempt,
    parse_job,
)
from charon_ci.metrics.roles import Roles
from charon_ci.prune.reachability import ChildRef, ManifestFacts


def records_json(
    history: History,
    roles: Roles,
    fingerprint: Mapping[str, Any],
    manifests: Mapping[str, ManifestFacts],
    step_patterns: tuple[re.Pattern[str], ...],
) -> dict[str, Any]:
    runs = []
    for run in history.runs:
        jobs = history.jobs.get(run.id)
        if jobs is None or not run.completed:
            continue
        attempts = history.attempts.get(run.id, {})
        runs.append(
            {
                "id": run.id,
                "run_attempt": run.run_attempt,
                "status": run.status,
                "attempts": [attempts[n].as_json() for n in sorted(attempts)],
                "jobs": [
                    job.as_json(steps=[s for s in job.steps if any(p.search(s.name) for p in step_patterns)])
                    for job in jobs
                ],
            }
        )
    return {
        "fingerprint": dict(fingerprint),
        "runs": runs,
        "probed": {str(k): {"pull": v[0], "prune": v[1]} for k, v in sorted(roles.probed.items())},
        "manifests": {digest: manifest_json(facts) for digest, facts in sorted(manifests.items())},
    }


def manifest_json(facts: ManifestFacts) -> dict[str, Any]:
    return {
        "children": [[c.digest, c.may_have_children, c.platform] for c in facts.children],
        "subject": facts.subject,
        "blobs": [[digest, size] for digest, size in facts.blobs],
        "is_index": facts.is_index,
    }


def parse_manifest(digest: str, body: Any) -> ManifestFacts:
    if not isinstance(body, Mapping):
        raise ValueError(f"manifest {digest} is not an object")
    children = []
    for item in body.get("children") or []:
        if not (isinstance(item, list) and len(item) == 3 and isinstance(item[0], str)):
            raise ValueError(f"manifest {digest}: a child is not [digest, may_have_children, platform]")
        children.append(ChildRef(item[0], bool(item[1]), bool(item[2])))
    blobs = []
    for item in body.get("blobs") or []:
        if not (isinstance(item, list) and len(item) == 2 and isinstance(item[0], str) and isinstance(item[1], int)):
            raise ValueError(f"manifest {digest}: a blob is not [digest, size]")
        blobs.append((item[0], item[1]))
    subject = body.get("subject")
    return ManifestFacts(
        digest, tuple(children), subject if isinstance(subject, str) else None, tuple(blobs), bool(body.get("is_index"))
    )


def parse_records(records: Any, fingerprint: Mapping[str, Any]) -> tuple[Reusable, str]:
    """A `Reusable` from a document's records, and a note on what could not be reused. ValueError if malformed."""
    if records is None:
        return Reusable(), "it holds no records"
    if not isinstance(records, Mapping):
        raise ValueError("'records' is not an object")
    reusable = Reusable()
    for digest, body in (records.get("manifests") or {}).items():
        reusable.manifests[str(digest)] = parse_manifest(str(digest), body)
    if dict(records.get("fingerprint") or {}) != dict(fingerprint):
        return reusable, "its workflows or patterns differ from this run's: runs are read again"
    for item in records.get("runs") or []:
        if not isinstance(item, Mapping):
            raise ValueError("a run record is not an object")
        run_id, attempt, status = item.get("id"), item.get("run_attempt"), item.get("status")
        if not isinstance(run_id, int) or not isinstance(attempt, int) or not isinstance(status, str):
            raise ValueError("a run record lacks id, run_attempt or status")
        attempts = {a.number: a for a in (parse_attempt(body) for body in item.get("attempts") or [])}
        jobs = tuple(parse_job(body) for body in item.get("jobs") or [])
        reusable.runs[run_id] = RunRecord(attempt, status, attempts, jobs)
    for key, value in (records.get("probed") or {}).items():
        if not str(key).isdigit() or not isinstance(value, Mapping):
            raise ValueError("a 'probed' entry is not {workflow id: {pull, prune}}")
        reusable.probed[int(key)] = (bool(value.get("pull")), bool(value.get("prune")))
    return reusable, ""
