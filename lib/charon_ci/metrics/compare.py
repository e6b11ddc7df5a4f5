"""Before / after (spec 8.6): the measures of a baseline metrics JSON beside this run's, with both samples.

Pure: both sides are metrics documents (dicts of schema version 1). A delta whose either sample is below
`min_sample` is still shown, flagged as too small to compare, and no regression threshold reads it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

# (key, label, unit, path to the value, path to its sample size, lower is better)
MEASURES: tuple[tuple[str, str, str, tuple[str, ...], tuple[str, ...], bool], ...] = (
    ("build_time_mean", "Build time, mean", "seconds", ("build_time", "attempts", "mean"),
     ("build_time", "attempts", "n"), True),
    ("build_time_median", "Build time, median", "seconds", ("build_time", "attempts", "median"),
     ("build_time", "attempts", "n"), True),
    ("build_time_p95", "Build time, p95", "seconds", ("build_time", "attempts", "p95"),
     ("build_time", "attempts", "n"), True),
    ("queue_time_median", "Queue time, median", "seconds", ("build_time", "queue", "median"),
     ("build_time", "queue", "n"), True),
    ("failure_rate", "Build failure rate", "fraction", ("failure_rate", "rate"), ("failure_rate", "decided"), True),
    ("builds_per_commit", "Builds per commit, mean", "count", ("builds_per_commit", "mean"),
     ("builds_per_commit", "commits"), True),
    ("pull_success_rate", "Image pull success rate", "fraction", ("pull_success", "rate"), ("pull_success", "n"),
     False),
    ("cleanup_success_rate", "Cleanup success rate", "fraction", ("cleanup_success", "rate"),
     ("cleanup_success", "n"), False),
    ("ci_time_per_pr_median", "CI time per PR commit, median", "seconds", ("ci_time_per_pr", "median"),
     ("ci_time_per_pr", "n"), True),
    # A total, not a sample: its "n" (versions) is shown but never makes it too small to compare.
    ("storage_bytes", "Registry storage", "bytes", ("storage", "total_bytes"), ("storage", "versions"), True),
)  # fmt: skip


@dataclass(frozen=True)
class Delta:
    key: str
    label: str
    unit: str
    before: float | None
    after: float | None
    n_before: int
    n_after: int
    lower_is_better: bool
    too_small: bool

    @property
    def change(self) -> float | None:
        if self.before is None or self.after is None:
            return None
        return self.after - self.before

    @property
    def relative(self) -> float | None:
        change = self.change
        if change is None or not self.before:
            return None
        return change / abs(self.before)

    @property
    def verdict(self) -> str:
        change = self.change
        if change is None:
            return "not measured"
        if self.too_small:
            return "sample too small"
        if change == 0:
            return "unchanged"
        better = (change < 0) == self.lower_is_better
        return "better" if better else "worse"

    def as_json(self) -> dict[str, Any]:
        change = self.change
        relative = self.relative
        return {
            "key": self.key,
            "label": self.label,
            "unit": self.unit,
            "before": self.before,
            "after": self.after,
            "n_before": self.n_before,
            "n_after": self.n_after,
            "change": None if change is None else round(change, 6),
            "relative_change": None if relative is None else round(relative, 6),
            "too_small": self.too_small,
            "verdict": self.verdict,
        }


def _dig(document: Mapping[str, Any], path: tuple[str, ...]) -> Any:
    value: Any = document
    for key in path:
        if not isinstance(value, Mapping):
            return None
        value = value.get(key)
    return value


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _count(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def compare(before: Mapping[str, Any], after: Mapping[str, Any], min_sample: int) -> list[Delta]:
    deltas = []
    for key, label, unit, path, n_path, lower in MEASURES:
        n_before, n_after = _count(_dig(before, n_path)), _count(_dig(after, n_path))
        deltas.append(
            Delta(
                key=key,
                label=label,
                unit=unit,
                before=_number(_dig(before, path)),
                after=_number(_dig(after, path)),
                n_before=n_before,
                n_after=n_after,
                lower_is_better=lower,
                too_small=key != "storage_bytes" and min(n_before, n_after) < min_sample,
            )
        )
    return deltas
