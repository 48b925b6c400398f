from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from services.scoring.app import settings_clock
from services.scoring.settings import ScoringSettings
from shared.clock import utc_now


def test_a_fixed_clock_stands_still_and_is_refused_in_production() -> None:
    settings = ScoringSettings(environment="test", scoring_fixed_clock="2026-11-22T12:00:00+01:00")
    clock = settings_clock(settings)
    assert clock() == clock() == datetime(2026, 11, 22, 11, 0, tzinfo=UTC)
    assert settings_clock(ScoringSettings(environment="test")) is utc_now
    with pytest.raises(ValidationError, match="must not be set in production"):
        ScoringSettings(environment="production", scoring_fixed_clock="2026-11-22T12:00:00Z")
    with pytest.raises(ValidationError, match="give a time zone"):
        ScoringSettings(environment="test", scoring_fixed_clock="2026-11-22T12:00:00")


def test_an_instance_id_makes_the_replica_a_static_group_member() -> None:
    assert ScoringSettings().kafka_membership() == {}
    assert ScoringSettings(scoring_instance_id="scoring-0").kafka_membership() == {
        "group_instance_id": "scoring-0"
    }
