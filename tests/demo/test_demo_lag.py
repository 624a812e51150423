"""The demo's checks go unknown only after real seconds without a result, whatever the speed."""

from __future__ import annotations

from monitor.board import policy_for
from monitor.config import load_config
from monitor.demo.run import CONFIG, LAG_TOLERANCE, _tolerant_of_lag

ENV = {"TPMON_DEMO_HTTP": "http://127.0.0.1:1", "TPMON_DEMO_TLS": "https://127.0.0.1:2"}


def test_a_busy_machine_does_not_make_the_story_flicker_to_unknown() -> None:
    settings = load_config(CONFIG, environ=ENV)
    for speed in (1.0, 3_200.0, 16_000.0):
        tolerant = _tolerant_of_lag(settings, speed)
        for _, check in tolerant.checks():
            real_seconds = policy_for(check, tolerant).stale_after / speed
            assert real_seconds >= min(LAG_TOLERANCE, 100 * check.interval / speed), (speed, check.name)
            # never shorter than the configured rule
            assert policy_for(check, tolerant).stale_after >= policy_for(check, settings).stale_after
    # at ×16,000 the configured rule alone would allow 1.35 s: the tolerance is what changed it
    fast = _tolerant_of_lag(settings, 16_000.0)
    assert fast.stale_after_intervals > settings.stale_after_intervals
    # at the speed of life nothing changes
    assert _tolerant_of_lag(settings, 1.0).stale_after_intervals == settings.stale_after_intervals
