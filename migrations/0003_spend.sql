-- 0003: what every request cost. One spend_logs row per request (success or failure),
-- partitioned by day so that the retention period drops whole partitions; daily rollups
-- per entity (key, user, team, organisation, end user, tag) x model x provider, so that
-- reports over months read thousands of rows instead of millions; end users (LiteLLM's
-- "customers") with their running spend. Column names follow LiteLLM's SpendLogs and
-- Daily*Spend tables in our own snake_case. See docs/spend.md.
-- Applied by migrate_blocking in one transaction; no BEGIN/COMMIT here.

CREATE TABLE spend_logs (
  row_id                uuid NOT NULL,      -- idempotency key, made once per request
  request_id            text NOT NULL,      -- x-litellm-call-id
  call_type             text NOT NULL,      -- completion, acompletion, aembedding, ...
  api_key               text NOT NULL DEFAULT '',  -- sha256 hex of the virtual key ('' master key / no auth)
  key_alias             text,
  user_id               text,
  team_id               text,
  organization_id       text,
  end_user              text,
  model                 text NOT NULL DEFAULT '',  -- the model the client asked for
  model_group           text,
  model_id              text,               -- deployment id
  custom_llm_provider   text,
  api_base              text,
  prompt_tokens         bigint NOT NULL DEFAULT 0,
  completion_tokens     bigint NOT NULL DEFAULT 0,
  total_tokens          bigint NOT NULL DEFAULT 0,
  cached_tokens         bigint NOT NULL DEFAULT 0,
  cache_creation_tokens bigint NOT NULL DEFAULT 0,
  reasoning_tokens      bigint NOT NULL DEFAULT 0,
  usage_estimated       boolean NOT NULL DEFAULT false,
  spend                 double precision NOT NULL DEFAULT 0,
  start_time            timestamptz NOT NULL,
  end_time              timestamptz NOT NULL,
  completion_start_time timestamptz,
  request_duration_ms   integer NOT NULL DEFAULT 0,
  status                text NOT NULL,      -- success | failure
  status_code           integer NOT NULL DEFAULT 0,
  error_type            text,
  cache_hit             boolean NOT NULL DEFAULT false,
  retries               integer NOT NULL DEFAULT 0,
  fallbacks             integer NOT NULL DEFAULT 0,
  requester_ip_address  text,
  request_tags          jsonb NOT NULL DEFAULT '[]'::jsonb,
  session_id            text,
  metadata              jsonb NOT NULL DEFAULT '{}'::jsonb,
  messages              jsonb,              -- only with store_prompts_in_spend_logs
  response              jsonb,
  PRIMARY KEY (row_id, start_time)
) PARTITION BY RANGE (start_time);

CREATE INDEX spend_logs_start_time ON spend_logs (start_time);
CREATE INDEX spend_logs_key_time ON spend_logs (api_key, start_time);
CREATE INDEX spend_logs_user_time ON spend_logs (user_id, start_time);
CREATE INDEX spend_logs_team_time ON spend_logs (team_id, start_time);
CREATE INDEX spend_logs_request_id ON spend_logs (request_id);

-- Running totals per day; entity_type is key (entity_id = the key hash), user, team,
-- org, end_user or tag. Rows are upserted with increments by the spend writer.
CREATE TABLE daily_spend (
  entity_type                 text NOT NULL,
  entity_id                   text NOT NULL,
  day                         date NOT NULL,
  api_key                     text NOT NULL DEFAULT '',
  model                       text NOT NULL DEFAULT '',
  model_group                 text NOT NULL DEFAULT '',
  custom_llm_provider         text NOT NULL DEFAULT '',
  prompt_tokens               bigint NOT NULL DEFAULT 0,
  completion_tokens           bigint NOT NULL DEFAULT 0,
  cache_read_input_tokens     bigint NOT NULL DEFAULT 0,
  cache_creation_input_tokens bigint NOT NULL DEFAULT 0,
  spend                       double precision NOT NULL DEFAULT 0,
  api_requests                bigint NOT NULL DEFAULT 0,
  successful_requests         bigint NOT NULL DEFAULT 0,
  failed_requests             bigint NOT NULL DEFAULT 0,
  PRIMARY KEY (entity_type, day, entity_id, api_key, model, model_group, custom_llm_provider)
);
CREATE INDEX daily_spend_entity ON daily_spend (entity_type, entity_id, day);

-- End users (the `user` field of a request, or x-litellm-end-user-id): LiteLLM's customers.
CREATE TABLE end_users (
  user_id              text PRIMARY KEY,
  alias                text,
  spend                double precision NOT NULL DEFAULT 0,
  budget_id            text REFERENCES budgets(budget_id),
  allowed_model_region text,
  default_model        text,
  blocked              boolean NOT NULL DEFAULT false,
  created_at           timestamptz NOT NULL DEFAULT now(),
  updated_at           timestamptz NOT NULL DEFAULT now()
);
