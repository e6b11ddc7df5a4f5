"""`charon-ci prune`: plan and apply a retention policy to a GHCR package or a Docker Hub repository.

Reads every input first (a bad one stops the run before any request), then:
- offline (`snapshot` set): plans from the snapshot file as of `now`; no network at all;
- online: lists the versions, looks up what is in use, reads the manifests the plan asks for, plans, and
  unless `dry-run` deletes oldest first within the rate budget (charon_ci.prune.apply).
Always writes the plan file (every version), the log (a line per version decided for itself, one line
counting those kept wholesale), the job summary and the outputs.
"""

from __future__ import annotations

import json
import os
import re
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO

from charon_ci import gha
from charon_ci.prune.model import InUse
from charon_ci.prune.policy import Plan, build_policy, collector_paused, parse_timestamp, plan
from charon_ci.prune.report import Outcome, log_line, log_plan, summary_markdown, write_plan_json
from charon_ci.prune.settings import PruneSettings
from charon_ci.prune.snapshot import load_snapshot

HELP = """usage: charon-ci prune

Plans (and unless dry-run applies) a retention policy to a GHCR package or Docker Hub repository: per-pattern
lifetimes, protected tags, in-use detection, and never a platform manifest, attestation or signature that a
kept image still needs. Reads INPUT_RETENTION, INPUT_PROTECT, INPUT_MIN-AGE, INPUT_KEEP-LAST, INPUT_DRY-RUN,
INPUT_PACKAGE, INPUT_OWNER, INPUT_REGISTRY, INPUT_TOKEN, INPUT_GITHUB-TOKEN, INPUT_USERNAME,
INPUT_GITHUB-API-URL, INPUT_REPOSITORY, INPUT_REGISTRY-HOST, INPUT_DOCKERHUB-API-URL, INPUT_SNAPSHOT,
INPUT_NOW, INPUT_PLAN-FILE, INPUT_MEASURE-BYTES; writes the plan file, the job summary and outputs
(plan-path, deleted-count, kept-count, failed-count, remaining-count, planned-count, bytes-freed). With
INPUT_SNAPSHOT set it touches no network.
"""

REGISTRIES = ("ghcr", "dockerhub")
_OWNER_RE = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,38})")
_GHCR_PACKAGE_RE = re.compile(r"[a-z0-9](?:[a-z0-9._-]|/(?=[a-z0-9]))*")
_HUB_REPOSITORY_RE = re.compile(r"[a-z0-9](?:[a-z0-9._-]){0,254}")
_REPOSITORY_RE = re.compile(r"[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+")


def parse_settings(env: Mapping[str, str]) -> PruneSettings:
    """Every input, checked; raises InputError for the first bad one."""
    inputs = gha.Inputs(env)
    policy = build_policy(
        inputs.lines("retention"),
        inputs.lines("protect"),
        inputs.text("min-age"),
        inputs.text("keep-last"),
    )
    dry_run = inputs.boolean("dry-run", default=True)
    measure_bytes = inputs.boolean("measure-bytes", default=True)
    registry = inputs.text("registry", "ghcr").lower()
    if registry not in REGISTRIES:
        raise gha.InputError("registry", " | ".join(REGISTRIES), registry)
    snapshot_text = inputs.text("snapshot")
    snapshot = Path(snapshot_text) if snapshot_text else None
    now_text = inputs.text("now")
    now = parse_timestamp(now_text, "now") if now_text else None
    if snapshot is None and now is not None:
        raise gha.InputError("now", "empty unless snapshot is set (a live run plans as of the real time)", now_text)
    if snapshot is not None and not dry_run:
        raise gha.InputError("dry-run", "true when snapshot is set (a snapshot can be planned, not pruned)", "false")

    owner = inputs.text("owner", env.get("GITHUB_REPOSITORY_OWNER", ""))
    if owner and not _OWNER_RE.fullmatch(owner):
        raise gha.InputError("owner", "a GitHub user or organization login (or a Docker Hub namespace)", owner)
    package = inputs.text("package")
    package_re = _GHCR_PACKAGE_RE if registry == "ghcr" else _HUB_REPOSITORY_RE
    if package and not (package_re.fullmatch(package) and len(package) <= 255):
        accepted = (
            "a GHCR container package name (lowercase, may contain /)"
            if registry == "ghcr"
            else "a Docker Hub repository name without namespace (lowercase)"
        )
        raise gha.InputError("package", accepted, package)
    repository = inputs.text("repository", env.get("GITHUB_REPOSITORY", ""))
    if repository and not _REPOSITORY_RE.fullmatch(repository):
        raise gha.InputError("repository", "owner/name of the repository whose PRs and runs use the images", repository)
    # The GitHub token stands in for the registry token only on GHCR: it must never be sent to Docker Hub.
    github_token_input = inputs.text("github-token", env.get("GITHUB_TOKEN", ""))
    token = inputs.text("token", github_token_input if registry == "ghcr" else "")
    github_token = github_token_input or (token if registry == "ghcr" else "")
    username = inputs.text("username", owner if registry == "dockerhub" else env.get("GITHUB_ACTOR", "") or owner)
    api_url = inputs.text("github-api-url", env.get("GITHUB_API_URL", "") or "https://api.github.com")
    if not re.fullmatch(r"https?://[A-Za-z0-9.:\[\]-]+(?:/[A-Za-z0-9._~/-]*)?", api_url):
        raise gha.InputError("github-api-url", "an http(s) URL such as https://api.github.com", api_url)
    plan_file = Path(inputs.text("plan-file", f"charon-prune-plan-{_slug(package or 'snapshot')}.json"))
    registry_host = inputs.text("registry-host", "ghcr.io" if registry == "ghcr" else "docker.io")
    if not re.fullmatch(r"[A-Za-z0-9.-]+(?::[0-9]{1,5})?", registry_host):
        raise gha.InputError("registry-host", "a registry host, optionally with :port (e.g. ghcr.io)", registry_host)
    hub_url = inputs.text("dockerhub-api-url", "https://hub.docker.com").rstrip("/")
    if not re.fullmatch(r"https?://[A-Za-z0-9.:\[\]-]+", hub_url):
        raise gha.InputError("dockerhub-api-url", "the Docker Hub API base URL, e.g. https://hub.docker.com", hub_url)

    if snapshot is None:
        for name, value, accepted in (
            ("package", package, "the package (GHCR) or repository (Docker Hub) to prune"),
            ("owner", owner, "the owner of the package (defaults to the repository owner)"),
            ("token", token, "a token that may list and delete the package's versions"),
            ("repository", repository, "owner/name whose open PRs and active runs use the images"),
            ("github-token", github_token, "a GitHub token that may read the repository's PRs and runs"),
        ):
            if not value:
                raise gha.InputError(name, accepted)
        if registry == "dockerhub" and not username:
            raise gha.InputError("username", "the Docker Hub user that logs in (defaults to owner)")
    # Last, once everything else is known good: the only check that touches the disk.
    check_plan_file(plan_file)
    return PruneSettings(
        policy=policy,
        dry_run=dry_run,
        registry=registry,
        package=package,
        owner=owner,
        token=token,
        github_token=github_token,
        username=username,
        github_api_url=api_url.rstrip("/"),
        repository=repository,
        snapshot=snapshot,
        now=now,
        plan_file=plan_file,
        registry_host=registry_host,
        dockerhub_api_url=hub_url,
        measure_bytes=measure_bytes,
    )


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9._-]+", "-", text.lower()).strip("-") or "package"


def check_plan_file(path: Path) -> None:
    """The plan file must be writable before anything is asked of a registry: a real run that deleted and
    then could not write its plan would leave no record of what it deleted."""
    accepted = "a file path in a folder this step can write (the plan is written there)"
    target = path if path.is_absolute() else Path.cwd() / path
    if not target.name or target.is_dir():
        raise gha.InputError("plan-file", f"{accepted}; not a folder", str(path))
    probe = target.with_name(f".{target.name}.{os.getpid()}.probe")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        os.close(os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        probe.unlink()
    except OSError as exc:
        raise gha.InputError("plan-file", f"{accepted} (cannot write there: {exc.strerror})", str(path)) from None


def write_plan_file(path: Path, write: Callable[[TextIO], None], env: Mapping[str, str]) -> str:
    """Write atomically (`write` fills the file); return the path to give later steps (relative to the
    workspace when inside it, since a container action's /github/workspace is another path on the runner)."""
    target = path if path.is_absolute() else Path.cwd() / path
    partial = target.with_name(f".{target.name}.{os.getpid()}.partial")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        with partial.open("w", encoding="utf-8", buffering=1 << 20) as out:
            write(out)
        partial.replace(target)
    except OSError as exc:
        partial.unlink(missing_ok=True)
        raise gha.ActionFailure("Cannot write the plan file", f"plan-file cannot be written: {exc.strerror}.") from None
    return gha.workspace_relative(str(target), env)


def report(
    settings: PruneSettings,
    result: Plan,
    outcome: Outcome,
    env: Mapping[str, str],
    sizes: Mapping[str, int] | None = None,
) -> int:
    """Log, plan file, summary, outputs. Returns 0: refused deletions are reported outcomes (warnings and
    failed-count), and only a stop a person must fix (`Outcome.fatal`) fails the step, decided by the caller."""
    package = settings.package or (settings.snapshot.name if settings.snapshot else "")

    def write(out: TextIO) -> None:
        write_plan_json(
            out,
            result,
            settings.policy,
            package=package,
            registry=settings.registry,
            dry_run=settings.dry_run,
            outcome=outcome,
            sizes=sizes,
        )

    plan_path = write_plan_file(settings.plan_file, write, env)
    gha.append_summary(
        summary_markdown(result, outcome, package=package, registry=settings.registry, dry_run=settings.dry_run),
        env,
    )
    # Empty when a real run did not measure (measure-bytes false, Docker Hub): unknown is not zero.
    freed = "0" if settings.dry_run else "" if outcome.bytes_freed is None else str(outcome.bytes_freed)
    printed = gha.write_outputs(
        {
            "plan-path": plan_path,
            "planned-count": str(len(result.delete)),
            "deleted-count": str(len(outcome.deleted)),
            "kept-count": str(len(result.keep)),
            "failed-count": str(len(outcome.failed)),
            "remaining-count": str(len(outcome.remaining)),
            "bytes-freed": freed,
        },
        env,
    )
    if printed is not None:
        sys.stdout.write(json.dumps(printed, indent=2) + "\n")
    verb = "would delete" if settings.dry_run else "deleted"
    done = len(result.delete) if settings.dry_run else len(outcome.deleted)
    gha.info(
        f"{verb} {done} of {len(result.delete)} planned, kept {len(result.keep)}, failed {len(outcome.failed)}, "
        f"not attempted {len(outcome.remaining) if not settings.dry_run else 0}; plan: {plan_path}"
    )
    for decision, why in outcome.failed:
        gha.warning(f"{log_line(decision, 'not deleted')} ({why})", title="charon-ci prune")
    if outcome.stopped_because:
        gha.warning(f"stopped early: {outcome.stopped_because}; the next run resumes", title="charon-ci prune")
    return 0


def run_offline(settings: PruneSettings, snapshot: Path, env: Mapping[str, str]) -> int:
    with collector_paused():  # nothing here makes reference cycles: leave the memory to reference counts
        return _run_offline(settings, snapshot, env)


def _run_offline(settings: PruneSettings, snapshot: Path, env: Mapping[str, str]) -> int:
    versions = load_snapshot(snapshot)
    now = settings.now or datetime.now(UTC)
    started = time.process_time()
    result = plan(versions, settings.policy, InUse(checked=False), now, None)
    gha.debug(f"planned {len(versions)} versions in {time.process_time() - started:.3f} s CPU")
    log_plan(result, settings.dry_run)
    outcome = Outcome(remaining=list(result.delete))
    return report(settings, result, outcome, env)


def main(env: Mapping[str, str]) -> int:
    settings = parse_settings(env)
    if settings.snapshot is not None:
        return run_offline(settings, settings.snapshot, env)
    from charon_ci.prune.apply import run_online

    return run_online(settings, env, report)


def run(argv: Sequence[str]) -> int:
    return gha.run_command("prune", HELP, argv, main)
