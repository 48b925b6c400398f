"""The pure scoring core: account state, events folded in, assessments out. No I/O."""

from services.scoring.domain.assessment import Assessment
from services.scoring.domain.health import Health, compute_health, drivers
from services.scoring.domain.rescore import (
    RESCORED_FIELDS,
    Override,
    Rescored,
    account_facts,
    rescore,
    scorecard_for,
)
from services.scoring.domain.signals import Signals
from services.scoring.domain.state import (
    AccountState,
    ApplyResult,
    Limits,
    apply_event,
    apply_events,
)
from services.scoring.domain.value import Portfolio

__all__ = [
    "RESCORED_FIELDS",
    "AccountState",
    "ApplyResult",
    "Assessment",
    "Health",
    "Limits",
    "Override",
    "Portfolio",
    "Rescored",
    "Signals",
    "account_facts",
    "apply_event",
    "apply_events",
    "compute_health",
    "drivers",
    "rescore",
    "scorecard_for",
]
