"""Account states kept in memory between batches, so a busy account is read once.

Reading and parsing a state took most of a batch's time when every batch read every
account it touched from the database. The cache holds the most recently used states
of the partitions this process owns, up to a number of accounts
(``VITALS_SCORING_STATE_CACHE_ACCOUNTS``).

It may only hold what the database holds: every batch still writes every state it
changed, in the transaction that stores its offsets. States are changed in place
before that commit, so the whole cache is dropped whenever a batch may not have
committed (the consume loop restarts) and whenever partitions move (assignment,
revocation): another replica may have written the accounts in between.
"""

from __future__ import annotations

from collections import OrderedDict

from services.scoring.domain import AccountState


class StateCache:
    def __init__(self, max_accounts: int) -> None:
        self._max_accounts = max_accounts
        self._states: OrderedDict[str, AccountState] = OrderedDict()

    def __len__(self) -> int:
        return len(self._states)

    def get(self, account_id: str) -> AccountState | None:
        state = self._states.get(account_id)
        if state is not None:
            self._states.move_to_end(account_id)
        return state

    def put(self, state: AccountState) -> None:
        self._states[state.account_id] = state
        self._states.move_to_end(state.account_id)
        while len(self._states) > self._max_accounts:
            self._states.popitem(last=False)

    def clear(self) -> None:
        self._states.clear()
