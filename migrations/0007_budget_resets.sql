-- 0007: budget resets (docs/budgets.md). The reset job finds what is due through these
-- indexes, and writes one budget_resets row per entity and period it reset: the primary key
-- makes a second reset of the same period impossible (an instance that raced past the
-- advisory lock would fail its transaction instead of zeroing spend twice), and `instance`
-- says which gateway did it. Rows older than 30 days are deleted by the job.
-- End users (LiteLLM's customers) are the end_users table of 0003; their budget is a
-- budgets row (budget_id), as in LiteLLM.

CREATE TABLE budget_resets (
  entity_type text NOT NULL,         -- key, user, team, budget, organization, end_user, team_membership, organization_membership
  entity_id   text NOT NULL,         -- memberships: "<team or org id>:<user_id>"
  period_end  timestamptz NOT NULL,  -- the budget_reset_at that passed
  next_reset  timestamptz,           -- the new budget_reset_at (budget rows and their own entities)
  instance    text NOT NULL,
  reset_at    timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (entity_type, entity_id, period_end)
);
CREATE INDEX budget_resets_reset_at_idx ON budget_resets (reset_at);

CREATE INDEX users_budget_reset_idx ON users (budget_reset_at) WHERE budget_reset_at IS NOT NULL;
CREATE INDEX teams_budget_reset_idx ON teams (budget_reset_at) WHERE budget_reset_at IS NOT NULL;
CREATE INDEX budgets_budget_reset_idx ON budgets (budget_reset_at) WHERE budget_reset_at IS NOT NULL;
CREATE INDEX end_users_budget_id_idx ON end_users (budget_id);
CREATE INDEX organizations_budget_id_idx ON organizations (budget_id);
CREATE INDEX team_memberships_budget_id_idx ON team_memberships (budget_id);
CREATE INDEX organization_memberships_budget_id_idx ON organization_memberships (budget_id);
