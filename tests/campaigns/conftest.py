"""Each campaign test starts with no caller refused for guessing (the refusals are remembered per process)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from campaigns.claims import guess_limit


@pytest.fixture(autouse=True)
def no_caller_refused_for_guessing() -> Iterator[None]:
    guess_limit._refused_until.clear()
    yield
    guess_limit._refused_until.clear()
