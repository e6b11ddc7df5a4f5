"""What request handlers share: state, URLs, clock, tunable GitHub behaviours, the artifact URL signer."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from .clock import Clock
from .render import Urls
from .state import State


@dataclass
class Settings:
    # The workflow-runs list returns at most this many results per query (total_count stays exact).
    runs_result_cap: int = 1000
    # GitHub documents the cap for filtered queries (actor, branch, created, event, head_sha, status, ...);
    # False applies it to every query, which is the stricter choice for clients.
    runs_cap_requires_filter: bool = False
    # Lifetime of the signed artifact URL behind the 302, in simulated seconds.
    artifact_url_ttl: float = 60.0
    # GitHub answers an exhausted primary budget with 403 or 429 (its docs allow both): clients must take either.
    primary_limit_status: int = 403
    # Link header of a runs page whose query matched more than runs_result_cap runs. GitHub does not document
    # it; "no-last" (default) gives prev/next/first over the reachable pages and no rel="last", since the
    # true last page cannot be reached; "capped" adds rel="last" at the last reachable page; "total" computes
    # every link from total_count, so next/last lead past the cap to pages that come back empty.
    runs_capped_links: Literal["no-last", "capped", "total"] = "no-last"
    # `GET /runs/{id}/jobs?filter=latest`: "attempt" = jobs of the run's latest attempt only (GitHub since May
    # 2025); "per-name" = the newest job of each name across all attempts (the meaning before).
    jobs_latest: Literal["attempt", "per-name"] = "attempt"
    # GitHub is closing `/runs/{id}/timing` down: True answers it 410 Gone.
    timing_gone: bool = False


@dataclass
class Context:
    state: State
    urls: Urls
    clock: Clock
    settings: Settings
    sign_artifact_url: Callable[[int], str]  # artifact id -> signed URL on the second loopback host
