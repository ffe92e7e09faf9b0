-- 0001: bootstrap. Each running gateway records itself here at startup (id, when);
-- mostly it proves the migration mechanism on a fresh database. The key/user/team/spend
-- schema comes in later files. Applied once, in one transaction, by migrate_blocking
-- (which creates switchyard_schema_migrations itself). No BEGIN/COMMIT in these files.
CREATE TABLE switchyard_instance (
  id         text PRIMARY KEY,
  hostname   text NOT NULL DEFAULT '',
  version    text NOT NULL DEFAULT '',
  started_at timestamptz NOT NULL DEFAULT now()
);
