-- 0009: deployments added with /model/new when general_settings.store_model_in_db is on
-- (LiteLLM's LiteLLM_ProxyModelTable). litellm_params keeps the values as written:
-- os.environ/ references stay references; credentials (api_key, ...) are sealed with
-- AES-256-GCM ("sy-enc:v1:..."), never stored in clear. Every instance merges these rows
-- with its config file's model_list (docs/configuration.md, "Models in the database").

CREATE TABLE proxy_models (
  model_id       text PRIMARY KEY,
  model_name     text NOT NULL,
  litellm_params jsonb NOT NULL,
  model_info     jsonb NOT NULL DEFAULT '{}'::jsonb,
  created_at     timestamptz NOT NULL DEFAULT now(),
  created_by     text NOT NULL DEFAULT '',
  updated_at     timestamptz NOT NULL DEFAULT now(),
  updated_by     text NOT NULL DEFAULT ''
);
