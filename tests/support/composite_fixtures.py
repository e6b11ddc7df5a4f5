"""Pytest fixture for the composite harness: one RUNNER_TEMP for the whole session, like one long job."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.composite import ActionRunner

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def action_runner(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ActionRunner]:
    yield ActionRunner(tmp_path_factory.mktemp("runner-temp"))
