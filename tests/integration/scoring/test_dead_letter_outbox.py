"""The dead-letter outbox keeps one letter per source record, however often it is read."""

from sqlalchemy import func, select

from services.scoring.models import DeadLetterOutbox
from shared import dead_letter_outbox
from shared.db import create_engine, session_factory
from shared.dlq import DeadLetter
from tests.support.scoring_builders import NOW


def _letter(offset: int) -> DeadLetter:
    return DeadLetter.of(
        b"{}",
        reason="too_late",
        message="too late",
        source=f"kafka:events/0@{offset}",
        rejected_at=NOW,
        processor="scoring@test",
        topic="events",
        partition=0,
        offset=offset,
        account_id="acme",
    )


async def test_a_record_read_again_is_dead_lettered_once(scoring_db: str) -> None:
    engine = create_engine(scoring_db)
    sessions = session_factory(engine)
    for batch in ([_letter(1), _letter(2)], [_letter(2), _letter(3)]):
        async with sessions() as session, session.begin():
            await dead_letter_outbox.add(session, DeadLetterOutbox, batch, NOW)
    async with sessions() as session:
        sources = (await session.scalars(select(DeadLetterOutbox.source))).all()
        total = await session.scalar(select(func.count()).select_from(DeadLetterOutbox))
    await engine.dispose()

    assert set(sources) == {"kafka:events/0@1", "kafka:events/0@2", "kafka:events/0@3"}
    assert total == 3
