-- 0002: the multi-tenant model: organisations -> teams -> users -> virtual keys,
-- shared budgets, team memberships, archives of deleted keys/teams, regenerate grace
-- tokens and the audit log of management changes. Concepts and column names follow
-- LiteLLM's schema (its Prisma tables), in our own snake_case tables. Money is double precision
-- (USD, like LiteLLM's Float); tpm/rpm are bigint. Applied by migrate_blocking in one
-- transaction; no BEGIN/COMMIT here.

CREATE TABLE budgets (
  budget_id             text PRIMARY KEY,
  max_budget            double precision,
  soft_budget           double precision,
  max_parallel_requests integer,
  tpm_limit             bigint,
  rpm_limit             bigint,
  model_max_budget      jsonb NOT NULL DEFAULT '{}'::jsonb,
  budget_duration       text,
  budget_reset_at       timestamptz,
  created_at            timestamptz NOT NULL DEFAULT now(),
  created_by            text NOT NULL DEFAULT '',
  updated_at            timestamptz NOT NULL DEFAULT now(),
  updated_by            text NOT NULL DEFAULT ''
);

CREATE TABLE organizations (
  organization_id    text PRIMARY KEY,
  organization_alias text,
  budget_id          text REFERENCES budgets(budget_id),
  models             text[] NOT NULL DEFAULT '{}',
  spend              double precision NOT NULL DEFAULT 0,
  model_spend        jsonb NOT NULL DEFAULT '{}'::jsonb,
  metadata           jsonb NOT NULL DEFAULT '{}'::jsonb,
  created_at         timestamptz NOT NULL DEFAULT now(),
  created_by         text NOT NULL DEFAULT '',
  updated_at         timestamptz NOT NULL DEFAULT now(),
  updated_by         text NOT NULL DEFAULT ''
);

CREATE TABLE teams (
  team_id                 text PRIMARY KEY,
  team_alias              text,
  organization_id         text REFERENCES organizations(organization_id),
  admins                  text[] NOT NULL DEFAULT '{}',
  members                 text[] NOT NULL DEFAULT '{}',
  members_with_roles      jsonb NOT NULL DEFAULT '[]'::jsonb,
  max_budget              double precision,
  soft_budget             double precision,
  spend                   double precision NOT NULL DEFAULT 0,
  model_spend             jsonb NOT NULL DEFAULT '{}'::jsonb,
  models                  text[] NOT NULL DEFAULT '{}',
  model_aliases           jsonb NOT NULL DEFAULT '{}'::jsonb,
  tpm_limit               bigint,
  rpm_limit               bigint,
  max_parallel_requests   integer,
  budget_duration         text,
  budget_reset_at         timestamptz,
  blocked                 boolean NOT NULL DEFAULT false,
  team_member_permissions text[] NOT NULL DEFAULT '{}',
  metadata                jsonb NOT NULL DEFAULT '{}'::jsonb,
  created_at              timestamptz NOT NULL DEFAULT now(),
  updated_at              timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX teams_organization_id_idx ON teams (organization_id);

CREATE TABLE users (
  user_id         text PRIMARY KEY,
  user_alias      text,
  user_email      text,
  user_role       text NOT NULL DEFAULT 'internal_user',
  teams           text[] NOT NULL DEFAULT '{}',
  organization_id text REFERENCES organizations(organization_id),
  sso_user_id     text UNIQUE,
  max_budget      double precision,
  spend           double precision NOT NULL DEFAULT 0,
  model_spend     jsonb NOT NULL DEFAULT '{}'::jsonb,
  models          text[] NOT NULL DEFAULT '{}',
  tpm_limit       bigint,
  rpm_limit       bigint,
  budget_duration text,
  budget_reset_at timestamptz,
  metadata        jsonb NOT NULL DEFAULT '{}'::jsonb,
  created_at      timestamptz NOT NULL DEFAULT now(),
  updated_at      timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT users_role_check CHECK (user_role IN ('proxy_admin', 'proxy_admin_viewer', 'org_admin',
                                                  'internal_user', 'internal_user_viewer', 'team',
                                                  'customer'))
);
CREATE INDEX users_user_email_idx ON users (user_email);

CREATE TABLE team_memberships (
  user_id   text NOT NULL REFERENCES users(user_id) ON DELETE CASCADE,
  team_id   text NOT NULL REFERENCES teams(team_id) ON DELETE CASCADE,
  role      text NOT NULL DEFAULT 'user' CHECK (role IN ('admin', 'user')),
  spend     double precision NOT NULL DEFAULT 0,
  budget_id text REFERENCES budgets(budget_id),
  PRIMARY KEY (user_id, team_id)
);

CREATE TABLE organization_memberships (
  user_id         text NOT NULL REFERENCES users(user_id) ON DELETE CASCADE,
  organization_id text NOT NULL REFERENCES organizations(organization_id) ON DELETE CASCADE,
  user_role       text,
  spend           double precision NOT NULL DEFAULT 0,
  budget_id       text REFERENCES budgets(budget_id),
  created_at      timestamptz NOT NULL DEFAULT now(),
  updated_at      timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (user_id, organization_id)
);

-- Virtual keys: token is the sha256 hex of the whole key string (LiteLLM's scheme).
-- Owner ids are plain text (no foreign keys), as in LiteLLM: keys may name a user or team
-- that is created later or was imported without one.
CREATE TABLE verification_tokens (
  token                  text PRIMARY KEY,
  key_name               text,
  key_alias              text,
  key_type               text NOT NULL DEFAULT 'default',
  spend                  double precision NOT NULL DEFAULT 0,
  max_budget             double precision,
  soft_budget            double precision,
  expires                timestamptz,
  models                 text[] NOT NULL DEFAULT '{}',
  aliases                jsonb NOT NULL DEFAULT '{}'::jsonb,
  config                 jsonb NOT NULL DEFAULT '{}'::jsonb,
  permissions            jsonb NOT NULL DEFAULT '{}'::jsonb,
  metadata               jsonb NOT NULL DEFAULT '{}'::jsonb,
  user_id                text,
  team_id                text,
  organization_id        text,
  budget_id              text,
  blocked                boolean NOT NULL DEFAULT false,
  tpm_limit              bigint,
  rpm_limit              bigint,
  max_parallel_requests  integer,
  model_spend            jsonb NOT NULL DEFAULT '{}'::jsonb,
  model_max_budget       jsonb NOT NULL DEFAULT '{}'::jsonb,
  allowed_cache_controls text[] NOT NULL DEFAULT '{}',
  allowed_routes         text[] NOT NULL DEFAULT '{}',
  budget_duration        text,
  budget_reset_at        timestamptz,
  auto_rotate            boolean NOT NULL DEFAULT false,
  rotation_interval      text,
  rotation_count         integer NOT NULL DEFAULT 0,
  last_rotation_at       timestamptz,
  key_rotation_at        timestamptz,
  last_active            timestamptz,
  created_at             timestamptz NOT NULL DEFAULT now(),
  created_by             text NOT NULL DEFAULT '',
  updated_at             timestamptz NOT NULL DEFAULT now(),
  updated_by             text NOT NULL DEFAULT ''
);
CREATE INDEX verification_tokens_user_team_idx ON verification_tokens (user_id, team_id);
CREATE INDEX verification_tokens_team_idx ON verification_tokens (team_id);
CREATE INDEX verification_tokens_reset_idx ON verification_tokens (budget_reset_at, expires);
CREATE INDEX verification_tokens_alias_idx ON verification_tokens (key_alias);

-- Regenerate grace: the old hash keeps resolving to active_token_id until revoke_at.
CREATE TABLE deprecated_verification_tokens (
  token           text PRIMARY KEY,
  active_token_id text NOT NULL,
  revoke_at       timestamptz NOT NULL,
  created_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX deprecated_verification_tokens_active_idx ON deprecated_verification_tokens (active_token_id);

-- Archives: the deleted row (as jsonb, so later columns never break it) plus who and when.
CREATE TABLE deleted_verification_tokens (
  id                 bigserial PRIMARY KEY,
  token              text NOT NULL,
  row_data           jsonb NOT NULL,
  deleted_at         timestamptz NOT NULL DEFAULT now(),
  deleted_by         text NOT NULL DEFAULT '',
  deleted_by_api_key text NOT NULL DEFAULT '',
  litellm_changed_by text NOT NULL DEFAULT ''
);
CREATE INDEX deleted_verification_tokens_token_idx ON deleted_verification_tokens (token);

CREATE TABLE deleted_teams (
  id                 bigserial PRIMARY KEY,
  team_id            text NOT NULL,
  row_data           jsonb NOT NULL,
  deleted_at         timestamptz NOT NULL DEFAULT now(),
  deleted_by         text NOT NULL DEFAULT '',
  deleted_by_api_key text NOT NULL DEFAULT '',
  litellm_changed_by text NOT NULL DEFAULT ''
);
CREATE INDEX deleted_teams_team_id_idx ON deleted_teams (team_id);

CREATE TABLE audit_log (
  id         bigserial PRIMARY KEY,
  changed_by text NOT NULL DEFAULT '',
  changed_by_api_key text NOT NULL DEFAULT '',
  action     text NOT NULL,   -- created | updated | deleted | blocked | unblocked | regenerated
  table_name text NOT NULL,   -- verification_tokens, users, teams, ...
  object_id  text NOT NULL,
  before     jsonb,
  after      jsonb,
  created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX audit_log_object_idx ON audit_log (table_name, object_id);
CREATE INDEX audit_log_created_at_idx ON audit_log (created_at);
