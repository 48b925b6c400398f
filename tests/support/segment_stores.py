"""A Segment store for tests of what a fault in mapping does."""

from __future__ import annotations

from collections.abc import Collection, Iterator, Mapping, Sequence
from datetime import datetime

from services.ingest.sources.segment.service import Waited, WaitingCall

FAULT = "a fault in mapping"


class _FailingAccounts(Mapping[str, str]):
    def __getitem__(self, user: str) -> str:
        raise ValueError(FAULT)

    def __iter__(self) -> Iterator[str]:
        return iter(())

    def __len__(self) -> int:
        return 0


class FaultyStore:
    """Looking up any user's account raises ``ValueError(FAULT)``, as a bug would: a
    call that names its account maps, one that needs the store breaks its body."""

    def accounts(self) -> Mapping[str, str]:
        return _FailingAccounts()

    def remember(self, grouped: Mapping[str, tuple[str, datetime]]) -> None:
        pass

    def hold(self, calls: Sequence[WaitingCall]) -> None:
        pass

    def release(self, users: Collection[str], now: datetime) -> Waited:
        return Waited()
