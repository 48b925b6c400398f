-- One database per service, as each has its own URL setting (VITALS_INGEST_DATABASE_URL,
-- VITALS_SCORING_DATABASE_URL, VITALS_ALERTS_DATABASE_URL); `vitals migrate` creates
-- the tables. Run by the postgres image once, when its data volume is empty.
CREATE DATABASE vitals_ingest;
CREATE DATABASE vitals_scoring;
CREATE DATABASE vitals_alerts;
