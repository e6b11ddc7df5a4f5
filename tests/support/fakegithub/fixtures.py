"""pytest plugin: `fake_github` gives each test a started FakeGitHub and fails the test at teardown if a
response broke the OpenAPI contract, a handler crashed, or a token went to the artifact storage host.

Register with `pytest_plugins = ["tests.support.fakegithub.fixtures"]` in tests/conftest.py.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from .fake import FakeGitHub


def serve_fake_github(**options: Any) -> Iterator[FakeGitHub]:
    """The fixture's body as a plain generator: yields a started fake, stops it, then raises
    FakeGitHubError if it saw a problem. Use it for fixtures with other options or scopes."""
    gh = FakeGitHub(**options).start()
    try:
        yield gh
    finally:
        gh.stop()
    gh.check()


@pytest.fixture
def fake_github() -> Iterator[FakeGitHub]:
    yield from serve_fake_github()
