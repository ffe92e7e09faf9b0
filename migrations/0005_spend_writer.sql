-- 0005: cheaper spend_logs writes (the spend writer inserts every request's row).
-- The primary key becomes (start_time, row_id): the same uniqueness (row_id is the
-- idempotency key; start_time is in it because the table is partitioned by it), but a new
-- row lands at the end of the index (start times grow) instead of at a random place (a
-- uuid first), and the index serves time-ordered scans, so the start_time index is
-- redundant. The team index goes: nothing reads spend_logs by team (team reports read
-- daily_spend). daily_spend rows are updated by every batch: room left in each page keeps
-- those updates HOT (no new index entries per update). See docs/spend.md.
-- Applied by migrate_blocking in one transaction; no BEGIN/COMMIT here.

ALTER TABLE spend_logs DROP CONSTRAINT spend_logs_pkey;
ALTER TABLE spend_logs ADD PRIMARY KEY (start_time, row_id);
DROP INDEX spend_logs_start_time;
DROP INDEX spend_logs_team_time;
ALTER TABLE daily_spend SET (fillfactor = 70);
