"""What request handlers share: state, URLs, clock, tunable GitHub behaviours, the artifact URL signer."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

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


@dataclass
class Context:
    state: State
    urls: Urls
    clock: Clock
    settings: Settings
    sign_artifact_url: Callable[[int], str]  # artifact id -> signed URL on the second loopback host
