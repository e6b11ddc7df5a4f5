"""What a prune run tells people: the log (a line per version decided for itself, a count for those kept
wholesale), the plan as JSON with every version, the job summary in Markdown.

Pure formatting: callers pass the plan and the outcome of the deletions (if any) and write the results.
Tags and reasons may come from a snapshot file anyone could have written, so every table cell is escaped.
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from operator import attrgetter
from typing import Any, TextIO

import msgspec

from charon_ci import gha
from charon_ci.durations import format_duration
from charon_ci.prune.model import shown
from charon_ci.prune.policy import Decision, Plan, Policy
from charon_ci.prune.reachability import short_digest

SUMMARY_ROWS = 200  # the job summary is capped at 1 MiB; the plan file has everything
LOG_BATCH = 1000


@dataclass
class Outcome:
    """What happened to the plan's deletions (a dry run leaves everything `remaining`)."""

    deleted: list[Decision] = field(default_factory=list)
    already_gone: list[Decision] = field(default_factory=list)  # 404: another run or GHCR's cascade did it
    failed: list[tuple[Decision, str]] = field(default_factory=list)  # refusals and errors, with why
    remaining: list[Decision] = field(default_factory=list)  # not attempted: dry run, budget, or a stop
    stopped_because: str | None = None
    fatal: bool = False  # stopped for something a person must fix (permissions, a persistent outage)
    bytes_freed: int | None = None  # None: not measured
    bytes_planned: int | None = None


def human_bytes(count: int | None) -> str:
    if count is None:
        return "not measured"
    size = float(count)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{int(size)} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{count} B"  # unreachable


def md_cell(text: str) -> str:
    """One Markdown table cell: no line breaks, no column breaks, no HTML, no links, images or emphasis."""
    flat = " ".join(text.split())
    return (
        flat.replace("\\", "\\\\")
        .replace("|", "\\|")
        .replace("&", "&amp;")
        .replace("<", "&lt;")
        .replace(">", "&gt;")
        .replace("`", "'")
        .replace("[", "\\[")
        .replace("]", "\\]")
        .replace("*", "\\*")
    )


def log_line(decision: Decision, action: str) -> str:
    version = decision.version
    tags = ",".join(map(shown, version.tags)) if version.tags else "untagged"
    return f"{action} {tags} ({short_digest(version.digest)}, id {version.id}): {decision.summary}"


def policy_json(policy: Policy) -> dict[str, Any]:
    return {
        "retention": [rule.text for rule in policy.rules],
        "protect": [rule.source for rule in policy.protect],
        "min_age_seconds": int(policy.min_age.total_seconds()),
        "keep_last": policy.keep_last,
    }


class PlanItem(msgspec.Struct, gc=False):
    """One version in the plan file, as `Decision.as_json` says, plus what became of a planned deletion."""

    id: int
    digest: str
    tags: tuple[str, ...]
    created_at: datetime  # RFC 3339, `Z` for UTC, as GitHub writes it
    reasons: tuple[str, ...]
    summary: str
    bytes_freed: int | msgspec.UnsetType = msgspec.UNSET
    result: str | msgspec.UnsetType = msgspec.UNSET


_JSON = msgspec.json.Encoder()


def write_plan_json(
    out: TextIO,
    plan: Plan,
    policy: Policy,
    *,
    package: str,
    registry: str,
    dry_run: bool,
    outcome: Outcome | None = None,
    sizes: Mapping[str, int] | None = None,
) -> None:
    """The plan file: top-level `delete` and `keep` lists (each item has id, digest, tags, reasons), one
    version a line. Written as it is made: at 200,000 versions a pretty-printed document built whole cost
    more time and memory than planning."""
    status: dict[str, str] = {}
    if outcome is not None:
        status.update((d.version.digest, "deleted") for d in outcome.deleted)
        status.update((d.version.digest, "already gone") for d in outcome.already_gone)
        status.update((d.version.digest, f"failed: {why}") for d, why in outcome.failed)
        status.update((d.version.digest, "not attempted") for d in outcome.remaining)
    head = {
        "package": package, "registry": registry, "dry_run": dry_run, "policy": policy_json(policy), "now": plan.now
    }  # fmt: skip
    out.write(_json_text(head)[:-1] + ',\n"delete":[')

    def deleted_item(decision: Decision) -> PlanItem:
        item = _plan_item(decision)
        digest = decision.version.digest
        if sizes and digest in sizes:
            item.bytes_freed = int(sizes[digest])
        if outcome is not None:
            item.result = status.get(digest, "not attempted")
        return item

    _write_items(out, map(deleted_item, plan.delete))
    out.write('\n],\n"keep":[')
    _write_items(out, map(_plan_item, plan.keep))
    tail: dict[str, Any] = {
        "blocked_by": list(plan.blocked_by),
        "safety_buffer": format_duration(plan.buffer),
        "notes": list(plan.notes),
    }
    if outcome is not None:
        tail["counts"] = counts(plan, outcome)
        tail["stopped_because"] = outcome.stopped_because
        tail["bytes_freed"] = outcome.bytes_freed
        tail["bytes_planned"] = outcome.bytes_planned
    out.write("\n]," + _json_text(tail)[1:] + "\n")


def _plan_item(decision: Decision) -> PlanItem:
    version = decision.version
    return PlanItem(version.id, version.digest, version.tags, version.created_at, decision.reasons, decision.summary)


def _json_text(value: object) -> str:
    return _JSON.encode(value).decode()


def _write_items(out: TextIO, items: Iterable[PlanItem]) -> None:
    """`items` as the members of a JSON list, one a line, encoded a batch at a time in one call (C)."""
    separator = "\n"
    iterator = iter(items)
    while batch := list(itertools.islice(iterator, LOG_BATCH)):
        # JSON text never holds a raw line break (inside strings it is escaped), so the break after each
        # item is exactly where the list's comma goes.
        lines = _JSON.encode_lines(batch).decode()
        out.write(separator + lines[:-1].replace("\n", ",\n"))
        separator = ",\n"


def counts(plan: Plan, outcome: Outcome) -> dict[str, int]:
    return {
        "planned": len(plan.delete),
        "deleted": len(outcome.deleted),
        "already_gone": len(outcome.already_gone),
        "failed": len(outcome.failed),
        "remaining": len(outcome.remaining),
        "kept": len(plan.keep),
    }


def _reason_class(summary: str) -> str:
    """A short family name for a kept version's main reason (from its summary), for the summary's tally."""
    text = summary.split("kept: ", 1)[-1]
    for marker, family in (
        ("protected", "protected tag"),
        ("in use", "in use"),
        ("referenced by kept", "referenced by a kept image"),
        ("among the newest", "keep-last"),
        ("not expired", "not expired"),
        ("younger than min-age", "younger than min-age"),
        ("matches no retention rule", "no retention rule"),
        ("cannot prove unreferenced", "held back: unreadable manifest"),
        ("no manifest data", "untagged, no manifest data"),
        ("manifest not read", "untagged, not read"),
        ("manifest unreadable", "untagged, unreadable"),
    ):
        if marker in text:
            return family
    return "other"


def summary_markdown(
    plan: Plan,
    outcome: Outcome,
    *,
    package: str,
    registry: str,
    dry_run: bool,
    rows: int = SUMMARY_ROWS,
) -> str:
    mode = "dry run: nothing deleted" if dry_run else "deletions applied"
    lines = [f"## charon-ci prune: {md_cell(registry)} {md_cell(package)} ({mode})", ""]
    lines += [
        "| planned | deleted | already gone | failed | not attempted | kept | bytes freed |",
        "|---:|---:|---:|---:|---:|---:|---:|",
        f"| {len(plan.delete)} | {len(outcome.deleted)} | {len(outcome.already_gone)} | {len(outcome.failed)} "
        f"| {len(outcome.remaining)} | {len(plan.keep)} | {md_cell(_bytes_cell(outcome, dry_run))} |",
        "",
    ]
    for note in plan.notes:
        lines.append(f"- {md_cell(note)}")
    if outcome.stopped_because:
        lines.append(f"- stopped early: {md_cell(outcome.stopped_because)}; the next run resumes")
    if plan.blocked_by:
        lines.append(
            f"- untagged versions held back: {len(plan.blocked_by)} kept manifest(s) could not be read "
            f"({md_cell(', '.join(short_digest(d) for d in plan.blocked_by[:5]))})"
        )
    if lines[-1] != "":
        lines.append("")
    status = _status_by_digest(outcome, dry_run)
    if plan.delete:
        lines += ["### What goes and why (oldest first)", ""]
        lines += ["| result | tags | digest | created | why |", "|---|---|---|---|---|"]
        for decision in plan.delete[:rows]:
            version = decision.version
            tags = ", ".join(shown(tag) for tag in version.tags) or "untagged"
            lines.append(
                f"| {md_cell(status.get(version.digest, 'planned'))} | {md_cell(tags)} "
                f"| `{md_cell(short_digest(version.digest))}` | {version.created_at:%Y-%m-%d %H:%M} "
                f"| {md_cell(decision.summary)} |"
            )
        if len(plan.delete) > rows:
            lines.append(f"| … | {len(plan.delete) - rows} more in the plan file | | | |")
        lines.append("")
    if plan.keep:
        # Classified once per distinct summary: most kept versions share theirs (policy._plan).
        tally: Counter[str] = Counter()
        for summary, count in Counter(map(attrgetter("summary"), plan.keep)).items():
            tally[_reason_class(summary)] += count
        lines += ["### Kept, by main reason", "", "| reason | versions |", "|---|---:|"]
        lines += [f"| {md_cell(name)} | {count} |" for name, count in tally.most_common()]
        lines.append("")
    return "\n".join(lines)


def _bytes_cell(outcome: Outcome, dry_run: bool) -> str:
    if dry_run:
        planned = human_bytes(outcome.bytes_planned)
        return f"0 (would free {planned})" if outcome.bytes_planned is not None else "0 (size not measured)"
    return human_bytes(outcome.bytes_freed)


def _status_by_digest(outcome: Outcome, dry_run: bool) -> dict[str, str]:
    status: dict[str, str] = {}
    status.update((d.version.digest, "deleted") for d in outcome.deleted)
    status.update((d.version.digest, "already gone") for d in outcome.already_gone)
    status.update((d.version.digest, f"failed: {why}") for d, why in outcome.failed)
    status.update((d.version.digest, "dry run" if dry_run else "not attempted") for d in outcome.remaining)
    return status


def log_plan(result: Plan, dry_run: bool) -> None:
    """One line per version deleted or kept for something of its own, naming the tag that decided and why;
    untagged versions kept wholesale (`Plan.kept_alike`) are counted in one line a reason, since a line each
    would say the same thing tens of thousands of times (the plan file lists every one). Before anything is
    deleted. Lines go out in batches (one write and flush per batch, not per line: 200,000 flushes cost a
    second)."""
    verb = "would delete" if dry_run else "to delete"
    alike = result.kept_alike
    counted: Counter[str] = Counter()
    each: Sequence[Decision] = result.keep
    if alike:
        each = [d for d in result.keep if d.summary not in alike]
        counted.update(d.summary for d in result.keep if d.summary in alike)
    with gha.group(f"Plan: {len(result.delete)} to delete, {len(result.keep)} to keep"):
        for start in range(0, len(result.delete), LOG_BATCH):
            gha.info("\n".join([log_line(d, verb) for d in result.delete[start : start + LOG_BATCH]]))
        for start in range(0, len(each), LOG_BATCH):
            gha.info("\n".join([log_line(d, "keep") for d in each[start : start + LOG_BATCH]]))
        for summary, count in counted.items():
            versions = "version" if count == 1 else "versions"
            gha.info(f"keep {count} untagged {versions} alike, each listed in the plan file: {summary}")
    for note in result.notes:
        gha.notice(note, title="charon-ci prune")
