"""Where the project's shared reference data is: `shared/` beside the checkout, as laid for CI.

`CHARON_SHARED_DIR` overrides it; `/work/shared` is the developers' usual place.
"""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]


def shared_dir() -> Path:
    override = os.environ.get("CHARON_SHARED_DIR", "").strip()
    candidates = [Path(override)] if override else [REPO_ROOT.parent / "shared", Path("/work/shared")]
    for candidate in candidates:
        if (candidate / "github-rest").is_dir():
            return candidate
    raise FileNotFoundError(f"shared/github-rest not found (set CHARON_SHARED_DIR); looked in {candidates}")


SHARED_DIR = shared_dir()
GITHUB_REST = SHARED_DIR / "github-rest"
OPENAPI_SUBSET = GITHUB_REST / "openapi-subset.json"
WEBHOOK_SCHEMA = GITHUB_REST / "webhook-payloads.schema.json"
EVENTS_DIR = GITHUB_REST / "events"
