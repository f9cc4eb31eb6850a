"""Fixtures of the training integration tests (helpers live in trainworld.py)."""

from __future__ import annotations

import pytest

from trainworld import make_world


@pytest.fixture(scope="session")
def world(tmp_path_factory) -> dict:
    """The Qwen2-VL miniature world, shared by the tests of a session (read-only)."""
    return make_world(tmp_path_factory.mktemp("world"))
