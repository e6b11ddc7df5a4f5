"""A metrics run's settings, read once from the inputs by `metrics.command` and passed down to the edges."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from charon_ci.prune.policy import Policy


@dataclass(frozen=True)
class Thresholds:
    """Spec 8.3 / 8.4. Rates are fractions (0.05 = 5 %); increases compare with the baseline."""

    max_build_minutes: float = 20.0  # mean build time
    max_failure_rate: float = 0.05
    max_pull_failure_rate: float = 0.10
    max_build_time_increase: float = 0.20  # relative: +20 % of the baseline's mean
    max_failure_rate_increase: float = 0.03  # absolute: +3 percentage points


@dataclass(frozen=True)
class PreviousSource:
    """Where a previous metrics JSON comes from: a file, or the newest `ci-metrics-*` artifact."""

    input_name: str
    path: Path | None = None  # None: from an artifact

    @property
    def from_artifact(self) -> bool:
        return self.path is None

    def describe(self) -> str:
        return str(self.path) if self.path is not None else "the newest ci-metrics-* artifact"


@dataclass(frozen=True)
class MetricsSettings:
    repository: str
    github_token: str
    api_url: str
    since: float | None  # None: until - since_span (default 7 days); the dump's own when from-dump is set
    until: float | None  # None: from the dump, else now
    build_workflows: tuple[str, ...]
    build_job_pattern: re.Pattern[str]
    build_job_workflows: tuple[str, ...]  # empty: the build workflows
    pull_workflows: tuple[str, ...] | None  # None: recognised from their job steps
    prune_workflows: tuple[str, ...] | None
    pull_step_pattern: re.Pattern[str]
    prune_step_pattern: re.Pattern[str]
    pull_sample: int  # 0: every pull run
    package: str
    owner: str
    registry_host: str
    storage_policy: Policy
    baseline: PreviousSource | None
    state: PreviousSource | None
    report_dir: Path
    thresholds: Thresholds
    fail_on_threshold: bool
    min_sample: int
    max_requests: int
    from_dump: Path | None
    dump: Path | None
    prometheus_file: Path | None
    now: float
    since_span: float | None = None  # `since: 7d`: that long before until
    since_text: str = ""  # as given, for messages
    until_text: str = ""

    def __repr__(self) -> str:  # never show the token
        return f"MetricsSettings(repository={self.repository!r}, build_workflows={self.build_workflows!r})"

    @property
    def offline(self) -> bool:
        return self.from_dump is not None

    def fingerprint(self) -> dict[str, object]:
        """What decides which jobs are read and how steps are recognised: a state made with other values
        cannot stand in for fetching them again."""
        return {
            "build_workflows": sorted(self.build_workflows),
            "build_job_workflows": sorted(self.build_job_workflows),
            "pull_workflows": None if self.pull_workflows is None else sorted(self.pull_workflows),
            "prune_workflows": None if self.prune_workflows is None else sorted(self.prune_workflows),
            "pull_step_pattern": self.pull_step_pattern.pattern,
            "prune_step_pattern": self.prune_step_pattern.pattern,
        }
