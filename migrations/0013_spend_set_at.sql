-- 0013: when an admin last set an entity's spend (`spend` in /key/update, /user/update,
-- /team/update, /organization/update, /customer/update). The rate limiter names its budget
-- counters after it (docs/limits.md, "Budget periods"): a counter seeded from the spend
-- before the change is never read again, and every instance seeds a new one from the spend
-- that was set. Null: never set by hand. Nullable without a default: no table rewrite.
-- Applied by migrate_blocking in one transaction; no BEGIN/COMMIT here.

ALTER TABLE verification_tokens ADD COLUMN spend_set_at timestamptz;
ALTER TABLE users ADD COLUMN spend_set_at timestamptz;
ALTER TABLE teams ADD COLUMN spend_set_at timestamptz;
ALTER TABLE organizations ADD COLUMN spend_set_at timestamptz;
ALTER TABLE end_users ADD COLUMN spend_set_at timestamptz;
