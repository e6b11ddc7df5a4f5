"""Which workflows play which part: build (timed), build jobs (counted per commit), pull and prune (rated).

Build workflows are named by the user (a name or a file name). Pull and prune workflows are named too, or
recognised from their job steps: a step whose name matches `pull-step-pattern` / `prune-step-pattern`. A
`uses:` step without a `name:` is shown by GitHub as `Run OWNER/charon-ci/action-pull-image@REF`, which the
default patterns match, as they match a named step that says what it runs (`Pull image
(charon-ci/action-pull-image)`). The API does not say which action a step used: the name is all there is.
Pure: no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from charon_ci import gha
from charon_ci.metrics.model import Job, Step, Workflow

# GitHub's name for an unnamed `uses:` step is `Run OWNER/charon-ci/action-pull-image@REF`; a named step
# matches when its name says which action it runs: `Pull image (charon-ci/action-pull-image)`.
DEFAULT_PULL_STEP_PATTERN = r"charon-ci/action-pull-image\b"
DEFAULT_PRUNE_STEP_PATTERN = r"charon-ci/action-prune\b"
DEFAULT_BUILD_JOB_PATTERN = r"(?i)build"


def match_workflows(names: Sequence[str], workflows: Mapping[int, Workflow], input_name: str) -> frozenset[int]:
    """Ids of the workflows called `names` (a workflow's name, its file name, its path or its id).

    An unknown name is an input error listing what the repository has, so a typo stops the run."""
    found: set[int] = set()
    for wanted in names:
        hits = {
            flow.id for flow in workflows.values() if wanted in (flow.name, flow.file_name, flow.path, str(flow.id))
        }
        if not hits:
            known = sorted({flow.file_name for flow in workflows.values()} | {flow.name for flow in workflows.values()})
            shown = ", ".join(known[:30]) + (", ..." if len(known) > 30 else "")
            raise gha.InputError(
                input_name,
                "names or file names of this repository's workflows, one a line"
                + (f" (it has: {shown})" if shown else " (the repository has no workflows)"),
                wanted,
            )
        found |= hits
    return frozenset(found)


def matching_steps(jobs: Iterable[Job], pattern: re.Pattern[str]) -> list[tuple[Job, Step]]:
    return [(job, step) for job in jobs for step in job.steps if pattern.search(step.name)]


@dataclass
class Roles:
    build: frozenset[int]
    build_jobs: frozenset[int]
    pull: frozenset[int] = frozenset()
    prune: frozenset[int] = frozenset()
    # workflow id -> how it was recognised (or that it was looked at and is neither)
    recognised: dict[int, str] = field(default_factory=dict)
    # workflows whose role was decided by a look at their steps: workflow id -> (is pull, is prune)
    probed: dict[int, tuple[bool, bool]] = field(default_factory=dict)


def recognise(
    workflow_id: int, jobs: Sequence[Job], pull_pattern: re.Pattern[str], prune_pattern: re.Pattern[str]
) -> tuple[bool, bool, str]:
    """(uses the pull action, uses the prune action, how we know) from one run's jobs."""
    pulls = matching_steps(jobs, pull_pattern)
    prunes = matching_steps(jobs, prune_pattern)
    reasons = []
    if pulls:
        job, step = pulls[0]
        reasons.append(f"pull: step {step.name!r} of job {job.name!r} in run {job.run_id}")
    if prunes:
        job, step = prunes[0]
        reasons.append(f"prune: step {step.name!r} of job {job.name!r} in run {job.run_id}")
    if not reasons:
        run = jobs[0].run_id if jobs else None
        reasons.append(f"no pull or prune step in run {run}" if run is not None else "no jobs to look at")
    return bool(pulls), bool(prunes), "; ".join(reasons)
