"""The writer fence's timings from the environment."""

import pytest
from pydantic import ValidationError

from app.settings import Settings


def test_a_lease_shorter_than_two_heartbeats_is_refused() -> None:
    with pytest.raises(ValidationError, match="fence_lease_s"):
        Settings(fence_heartbeat_s=1.0, fence_lease_s=1.5)


def test_the_default_timings_let_a_writer_miss_heartbeats_before_a_takeover() -> None:
    timings = Settings().fence_timings()
    assert timings.lease_s >= 4 * timings.heartbeat_s
    assert timings.poll_s < 1 and timings.takeover_wait_s <= timings.lease_s
