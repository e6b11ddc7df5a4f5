"""Thresholds (spec 8.3 and 8.4): which measures crossed their limit. Pure.

Absolute (8.4, 8.3): mean build time, build failure rate, image pull failure rate. Against the baseline
(8.3 "unacceptable regressions"): build time increase (relative) and failure rate increase (percentage
points), judged only when both samples reach `min_sample`. A measure with no sample is not judged.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from charon_ci.metrics.compare import Delta
from charon_ci.metrics.settings import Thresholds
from charon_ci.metrics.stats import Metrics


@dataclass(frozen=True)
class Verdict:
    key: str
    title: str
    limit: float
    value: float | None
    n: int
    breached: bool
    message: str

    def as_json(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "title": self.title,
            "limit": self.limit,
            "value": None if self.value is None else round(self.value, 6),
            "n": self.n,
            "judged": self.value is not None,
            "breached": self.breached,
            "message": self.message,
        }


def _percent(value: float) -> str:
    return f"{value * 100:.1f} %"


def judge(metrics: Metrics, limits: Thresholds, deltas: list[Delta] | None) -> list[Verdict]:
    verdicts: list[Verdict] = []
    build = metrics.build.attempts
    mean_minutes = None if build.mean is None else build.mean / 60.0
    verdicts.append(
        Verdict(
            "build-time",
            "Build time above threshold",
            limits.max_build_minutes,
            mean_minutes,
            build.n,
            mean_minutes is not None and mean_minutes > limits.max_build_minutes,
            "no successful build attempt to time"
            if mean_minutes is None
            else f"mean build time {mean_minutes:.1f} min over {build.n} successful attempts "
            f"(limit {limits.max_build_minutes:g} min)",
        )
    )
    failures = metrics.failures
    verdicts.append(
        Verdict(
            "failure-rate",
            "Build failure rate above threshold",
            limits.max_failure_rate,
            failures.rate,
            failures.decided,
            failures.rate is not None and failures.rate > limits.max_failure_rate,
            "no decided build attempt"
            if failures.rate is None
            else f"{failures.failed} of {failures.decided} decided build attempts failed ({_percent(failures.rate)}; "
            f"limit {_percent(limits.max_failure_rate)})",
        )
    )
    pulls = metrics.pulls
    pull_failure = None if pulls.rate is None else 1.0 - pulls.rate
    verdicts.append(
        Verdict(
            "pull-failure-rate",
            "Image pull failures above threshold",
            limits.max_pull_failure_rate,
            pull_failure,
            pulls.success + pulls.failed,
            pull_failure is not None and pull_failure > limits.max_pull_failure_rate,
            "no image pull step seen"
            if pull_failure is None
            else f"{pulls.failed} of {pulls.success + pulls.failed} image pulls failed ({_percent(pull_failure)}; "
            f"limit {_percent(limits.max_pull_failure_rate)})",
        )
    )
    if deltas is not None:
        by_key = {delta.key: delta for delta in deltas}
        mean = by_key["build_time_mean"]
        verdicts.append(
            _regression(
                "build-time-increase", "Build time regression against the baseline", mean,
                None if mean.too_small else mean.relative, limits.max_build_time_increase,
                f"+{_percent(limits.max_build_time_increase)}", relative=True,
            )
        )  # fmt: skip
        rate = by_key["failure_rate"]
        verdicts.append(
            _regression(
                "failure-rate-increase", "Failure rate regression against the baseline", rate,
                None if rate.too_small else rate.change, limits.max_failure_rate_increase,
                f"+{limits.max_failure_rate_increase * 100:.1f} points", relative=False,
            )
        )  # fmt: skip
    return verdicts


def _regression(
    key: str, title: str, delta: Delta, value: float | None, limit: float, shown_limit: str, *, relative: bool
) -> Verdict:
    """A before/after verdict: crossed when the change is measured on big enough samples and above `limit`."""
    return Verdict(
        key,
        title,
        limit,
        value,
        min(delta.n_before, delta.n_after),
        value is not None and value > limit,
        _regression_text(delta, value, shown_limit, relative=relative),
    )


def _regression_text(delta: Delta, value: float | None, limit: str, *, relative: bool) -> str:
    samples = f"n {delta.n_before} before, {delta.n_after} after"
    if delta.change is None:
        return f"{delta.label}: not measured on both sides ({samples})"
    if value is None:
        return f"{delta.label}: sample too small to compare ({samples})"
    shown = f"{value * 100:+.1f} %" if relative else f"{value * 100:+.1f} points"
    return f"{delta.label}: {shown} against the baseline ({samples}; limit {limit})"
