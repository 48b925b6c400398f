"""The playbooks in force: the file's, or a set saved through the admin API.

Like the alert rules, a set saved through ``PUT /v1/playbooks`` is stored in
``alert_config`` and raises the configuration revision in the same transaction; a
:class:`PlaybookCache` reads that one number and parses the stored set again only
when it moved, so every replica uses a new set from its next batch, without a
restart.
"""

from __future__ import annotations

import logging

from sqlalchemy.ext.asyncio import AsyncSession

from services.alerts import repository
from services.alerts.documents import ConfigError
from services.alerts.playbooks.model import PlaybookSet, parse_playbooks

PLAYBOOKS_KEY = "playbooks"
log = logging.getLogger(__name__)


class PlaybookCache:
    def __init__(self, file_set: PlaybookSet) -> None:
        self.file_set = file_set
        self._parsed: tuple[int, PlaybookSet, str] | None = None

    async def current(self, session: AsyncSession) -> tuple[PlaybookSet, str]:
        """The set in force and where it comes from (``file`` or ``api``)."""
        revision = await repository.config_revision(session)
        if self._parsed is not None and self._parsed[0] == revision:
            return self._parsed[1], self._parsed[2]
        stored = await repository.config_document(session, PLAYBOOKS_KEY)
        found: tuple[PlaybookSet, str] = (self.file_set, "file")
        if stored is not None:
            try:
                found = (parse_playbooks(stored.document, "stored playbooks"), "api")
            except ConfigError as exc:
                # Saved by a release that read it differently: the file's set keeps
                # the consumer going (a batch must not fail on it), and the log says why.
                log.error("the stored playbooks are not used: %s", exc)
        if self._parsed is None or self._parsed[0] < revision:
            self._parsed = (revision, *found)
        return found
