"""pytest plugin registered by edgekit (entry point `pytest11`).

Fixtures for users' own pipelines without a phone: `tiny_gemma3_dir` builds the tiny
example checkpoint once per session (needs edgekit[convert]).
"""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def tiny_gemma3_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny Gemma 3 checkpoint folder with random weights, built once per test session."""
    from edgekit.convert.example import TINY, write_example_model

    return write_example_model(tmp_path_factory.mktemp("tiny-gemma3") / "model", TINY)
