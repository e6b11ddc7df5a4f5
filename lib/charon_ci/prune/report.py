"""What a prune run tells people: one log line per version, the plan as JSON, the job summary in Markdown.

Pure formatting: callers pass the plan and the outcome of the deletions (if any) and write the results.
Tags and reasons may come from a snapshot file anyone could have written, so every table cell is escaped.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from charon_ci import gha
from charon_ci.prune.model import shown
from charon_ci.prune.policy import Decision, Plan, Policy
from charon_ci.prune.reachability import short_digest

SUMMARY_ROWS = 200  # the job summary is capped at 1 MiB; the plan file has everything


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
    tags = ",".join(shown(tag) for tag in decision.version.tags) or "untagged"
    return f"{action} {tags} ({short_digest(decision.version.digest)}, id {decision.version.id}): {decision.summary}"


def policy_json(policy: Policy) -> dict[str, Any]:
    return {
        "retention": [rule.text for rule in policy.rules],
        "protect": [rule.source for rule in policy.protect],
        "min_age_seconds": int(policy.min_age.total_seconds()),
        "keep_last": policy.keep_last,
    }


def plan_document(
    plan: Plan,
    policy: Policy,
    *,
    package: str,
    registry: str,
    dry_run: bool,
    outcome: Outcome | None = None,
    sizes: Mapping[str, int] | None = None,
) -> dict[str, Any]:
    """The plan file: top-level `delete` and `keep` lists (each item has id, digest, tags, reasons)."""
    document: dict[str, Any] = {
        "package": package,
        "registry": registry,
        "dry_run": dry_run,
        "policy": policy_json(policy),
    }
    document.update(plan.as_json())
    if sizes:
        for item in document["delete"]:
            if item["digest"] in sizes:
                item["bytes_freed"] = sizes[item["digest"]]
    if outcome is not None:
        status: dict[str, str] = {}
        status.update((d.version.digest, "deleted") for d in outcome.deleted)
        status.update((d.version.digest, "already gone") for d in outcome.already_gone)
        status.update((d.version.digest, f"failed: {why}") for d, why in outcome.failed)
        status.update((d.version.digest, "not attempted") for d in outcome.remaining)
        for item in document["delete"]:
            item["result"] = status.get(item["digest"], "not attempted")
        document["counts"] = counts(plan, outcome)
        document["stopped_because"] = outcome.stopped_because
        document["bytes_freed"] = outcome.bytes_freed
        document["bytes_planned"] = outcome.bytes_planned
    return document


def plan_json(document: Mapping[str, Any]) -> str:
    return json.dumps(document, indent=2, sort_keys=False) + "\n"


def counts(plan: Plan, outcome: Outcome) -> dict[str, int]:
    return {
        "planned": len(plan.delete),
        "deleted": len(outcome.deleted),
        "already_gone": len(outcome.already_gone),
        "failed": len(outcome.failed),
        "remaining": len(outcome.remaining),
        "kept": len(plan.keep),
    }


def _reason_class(decision: Decision) -> str:
    """A short family name for a kept version's main reason, for the summary's tally."""
    text = decision.summary.split("kept: ", 1)[-1]
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
        tally = Counter(_reason_class(d) for d in plan.keep)
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
    """One line per version, naming the tag that decided and why; before anything is deleted."""
    with gha.group(f"Plan: {len(result.delete)} to delete, {len(result.keep)} to keep"):
        for decision in result.delete:
            gha.info(log_line(decision, "would delete" if dry_run else "to delete"))
        for decision in result.keep:
            gha.info(log_line(decision, "keep"))
    for note in result.notes:
        gha.notice(note, title="charon-ci prune")
