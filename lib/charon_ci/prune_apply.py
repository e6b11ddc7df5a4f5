"""Online prune: list, look up what is in use, read manifests, plan, delete within the rate budget."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

from charon_ci import gha

if TYPE_CHECKING:
    from charon_ci.commands.prune import PruneSettings
    from charon_ci.prune_report import Outcome
    from charon_ci.retention import Plan

Reporter = Callable[["PruneSettings", "Plan", "Outcome", Mapping[str, str]], int]


def run_online(settings: PruneSettings, env: Mapping[str, str], report: Reporter) -> int:
    raise gha.ActionFailure("Not available yet", "online pruning is not built yet; use snapshot")
