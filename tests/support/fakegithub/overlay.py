"""The runs/jobs overlay: a second, stricter contract for the workflow-run and job bodies the metrics read.

GitHub's OpenAPI makes most run and job fields optional and leaves `status`/`conclusion` as free strings, so a
fake could drop `run_started_at` or serve `conclusion: "passed"` and still pass the contract. The overlay
(`runs-jobs.overlay.schema.json` beside this file, JSON Schema 2020-12) requires those fields with GitHub's
enums and URI/date-time formats; its `x-operations` names which operations it covers and the shape of their
bodies. On top of the schema, this module checks what JSON Schema cannot say:

- a run: `created_at <= run_started_at <= updated_at`; `previous_attempt_url` names attempt `run_attempt - 1`
  of this very run;
- a job: `created_at <= started_at <= completed_at`, except GitHub's known oddity of a *skipped* job whose
  `completed_at` is before its `started_at`; `run_url` names `run_id`; each step's times lie inside its job's.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
from datetime import datetime
from functools import cached_property
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from jsonschema import Draft202012Validator, FormatChecker
from jsonschema.exceptions import best_match

OVERLAY_PATH = Path(__file__).with_name("runs-jobs.overlay.schema.json")
_MEMO_LIMIT = 100_000
_ATTEMPT_URL = re.compile(r"/actions/runs/(\d+)/attempts/(\d+)$")
_RUN_URL = re.compile(r"/actions/runs/(\d+)$")


def _date_time(value: object) -> bool:
    if not isinstance(value, str):
        return True
    try:
        datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return False
    return True


def _uri(value: object) -> bool:
    if not isinstance(value, str):
        return True
    parts = urlsplit(value)
    return parts.scheme in {"http", "https"} and bool(parts.netloc)


def _format_checker() -> FormatChecker:
    checker = FormatChecker(formats=())
    checker.checks("date-time")(_date_time)
    checker.checks("uri")(_uri)
    return checker


def _epoch(value: object) -> float | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


# --- ordering rules, shared with the setters in fake.py (which raise on them at once) ------------------------

def run_order_problem(created: float, started: float, updated: float) -> str | None:
    if not created <= started <= updated:
        return "expected created_at <= run_started_at <= updated_at"
    return None


def job_order_problem(created: float, started: float, completed: float | None, conclusion: str | None) -> str | None:
    if started < created:
        return "expected created_at <= started_at"
    # GitHub's known oddity: a skipped job may report completed_at before started_at.
    if completed is not None and completed < started and conclusion != "skipped":
        return "expected started_at <= completed_at (only a skipped job may complete before it started)"
    return None


def step_order_problem(job_started: float, job_completed: float | None, started: float | None,
                       completed: float | None) -> str | None:
    if started is not None and started < job_started:
        return "a step starts before its job"
    if started is not None and completed is not None and completed < started:
        return "a step completes before it starts"
    if job_completed is not None and completed is not None and completed > job_completed:
        return "a step completes after its job"
    return None


def _run_rules(run: dict[str, Any]) -> str | None:
    created, started, updated = (_epoch(run.get(key)) for key in ("created_at", "run_started_at", "updated_at"))
    if created is not None and started is not None and updated is not None:
        problem = run_order_problem(created, started, updated)
        if problem:
            return problem
    previous = run.get("previous_attempt_url")
    if isinstance(previous, str):
        found = _ATTEMPT_URL.search(previous)
        expected = (str(run.get("id")), str(int(run.get("run_attempt") or 0) - 1))
        if found is None or found.groups() != expected:
            return f"previous_attempt_url {previous!r} does not name attempt {expected[1]} of run {expected[0]}"
    return None


def _job_rules(job: dict[str, Any]) -> str | None:
    run_url = _RUN_URL.search(str(job.get("run_url", "")))
    if run_url is None or run_url.group(1) != str(job.get("run_id")):
        return f"run_url {job.get('run_url')!r} does not name run {job.get('run_id')}"
    created, started, completed = (_epoch(job.get(key)) for key in ("created_at", "started_at", "completed_at"))
    if created is None or started is None:
        return None
    problem = job_order_problem(created, started, completed, job.get("conclusion"))
    if problem:
        return problem
    if job.get("conclusion") == "skipped" and completed is not None and completed < started:
        return None  # the oddity: no interval to hold steps in
    for index, step in enumerate(job.get("steps") or []):
        problem = step_order_problem(started, completed, _epoch(step.get("started_at")),
                                     _epoch(step.get("completed_at")))
        if problem:
            return f"steps/{index}: {problem}"
    return None


def _inline(node: Any, defs: dict[str, Any]) -> Any:
    """The schema with every local `$ref` replaced by its definition: spares jsonschema a reference lookup per
    field, which is most of its cost on a page of runs."""
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/$defs/"):
            return _inline(defs[ref.removeprefix("#/$defs/")], defs)
        return {key: _inline(value, defs) for key, value in node.items()}
    if isinstance(node, list):
        return [_inline(item, defs) for item in node]
    return node


class Overlay:
    """Compiled overlay validators, one per covered operation; thread-safe, successes memoised by body hash."""

    def __init__(self, path: Path = OVERLAY_PATH) -> None:
        self.path = path
        self.document: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
        self._lock = threading.Lock()
        self._valid: set[bytes] = set()

    @cached_property
    def _validators(self) -> dict[str, Draft202012Validator]:
        defs, checker = self.document["$defs"], _format_checker()
        return {operation: Draft202012Validator(_inline({"$ref": pointer}, defs), format_checker=checker)
                for operation, pointer in self.document["x-operations"].items()}

    @property
    def operations(self) -> set[str]:
        return set(self.document["x-operations"])

    def check(self, operation_id: str | None, status: int, body: bytes) -> str | None:
        """None when `body` fits the overlay (or the overlay does not cover this response), else the problem."""
        if status != 200 or operation_id is None or operation_id not in self.document["x-operations"] or not body:
            return None
        digest = hashlib.sha256(operation_id.encode() + b"\0" + body).digest()
        if digest in self._valid:
            return None
        try:
            document = json.loads(body)
        except ValueError as exc:
            return f"overlay: body is not JSON: {exc}"
        with self._lock:
            validator = self._validators[operation_id]
        error = best_match(validator.iter_errors(document))
        if error is not None:
            where = "/".join(str(part) for part in error.absolute_path) or "(root)"
            return f"overlay: body fails {self.path.name} at {where}: {error.message[:300]}"
        problem = self._rules(document)
        if problem is not None:
            return f"overlay: {problem}"
        with self._lock:
            if len(self._valid) >= _MEMO_LIMIT:
                self._valid.clear()
            self._valid.add(digest)
        return None

    @staticmethod
    def _rules(document: dict[str, Any]) -> str | None:
        if "workflow_runs" in document:
            items: list[tuple[str, dict[str, Any], bool]] = [
                (f"workflow_runs/{i}", run, True) for i, run in enumerate(document["workflow_runs"])]
        elif "jobs" in document:
            items = [(f"jobs/{i}", job, False) for i, job in enumerate(document["jobs"])]
        else:
            items = [("(root)", document, True)]
        for where, item, is_run in items:
            problem = _run_rules(item) if is_run else _job_rules(item)
            if problem is not None:
                return f"{where}: {problem}"
        return None


_shared: Overlay | None = None
_shared_lock = threading.Lock()


def shared_overlay() -> Overlay:
    global _shared  # noqa: PLW0603 - one compiled overlay per process
    with _shared_lock:
        if _shared is None:
            _shared = Overlay()
        return _shared
