#include "known_keys.hpp"

#include <array>

namespace switchyard::config::detail {

namespace {

using vt = value_type;

// ---- top level -------------------------------------------------------------------------
constexpr std::array top_level_keys{
    key_spec{"model_list", vt::list},
    key_spec{"router_settings", vt::mapping},
    key_spec{"litellm_settings", vt::mapping},
    key_spec{"general_settings", vt::mapping},
    key_spec{"environment_variables", vt::mapping},
    key_spec{"include", vt::string_or_list},
    key_spec{"credential_list", vt::list},
};

// Known LiteLLM sections we accept and ignore, with what happens instead.
struct ignored_section {
  std::string_view name;
  std::string_view note;
};
constexpr std::array ignored_top_level{
    ignored_section{"guardrails", "section ignored: no guardrails run"},
    ignored_section{"assistant_settings", "section ignored: no Assistants API"},
    ignored_section{"files_settings", "section ignored: no Files API"},
    ignored_section{"finetune_settings", "section ignored: no fine-tuning API"},
    ignored_section{"mcp_servers", "section ignored: no MCP gateway"},
    ignored_section{"search_tools", "section ignored: no search tools"},
    ignored_section{"vector_store_registry", "section ignored: no vector stores"},
    ignored_section{"prompts", "section ignored: no prompt management"},
};

// ---- model_list[] ----------------------------------------------------------------------
constexpr std::array model_entry_keys{
    key_spec{"model_name", vt::string},
    key_spec{"litellm_params", vt::mapping},
    key_spec{"model_info", vt::mapping},
};

// LiteLLM forwards unknown litellm_params to the provider call, so this list is generous:
// the routing/proxy params, then the OpenAI request params, then provider-specific ones.
constexpr std::array litellm_params_keys{
    // what Switchyard reads
    key_spec{"model", vt::string},
    key_spec{"api_base", vt::string},
    key_spec{"api_key", vt::string},
    key_spec{"api_version", vt::string},
    key_spec{"organization", vt::string},
    key_spec{"extra_headers", vt::mapping},
    key_spec{"timeout", vt::number},
    key_spec{"stream_timeout", vt::number},
    key_spec{"rpm", vt::number},
    key_spec{"tpm", vt::number},
    key_spec{"weight", vt::number},
    key_spec{"order", vt::integer},
    key_spec{"max_parallel_requests", vt::integer},
    key_spec{"cooldown_time", vt::number},
    key_spec{"ssl_verify", vt::any},
    key_spec{"mock_response", vt::string},
    key_spec{"custom_llm_provider", vt::string},
    // documented routing / proxy / cost params
    key_spec{"max_retries", vt::integer, "ignored: router_settings/litellm_settings num_retries and retry_policy decide retries"},
    key_spec{"num_retries", vt::integer, "ignored per deployment: router_settings/litellm_settings num_retries apply"},
    key_spec{"input_cost_per_token", vt::number},
    key_spec{"output_cost_per_token", vt::number},
    key_spec{"input_cost_per_second", vt::number},
    key_spec{"output_cost_per_second", vt::number},
    key_spec{"cache_creation_input_token_cost", vt::number},
    key_spec{"cache_read_input_token_cost", vt::number},
    key_spec{"region_name", vt::string, "ignored: no region-based routing"},
    key_spec{"base_model", vt::string},
    key_spec{"tags", vt::string_or_list},
    key_spec{"headers", vt::mapping},
    key_spec{"base_url", vt::string},
    key_spec{"use_in_pass_through", vt::boolean, "ignored: no pass-through routes"},
    key_spec{"use_litellm_proxy", vt::boolean, "ignored"},
    key_spec{"merge_reasoning_content_in_choices", vt::boolean, "ignored: reasoning stays in reasoning_content"},
    key_spec{"drop_params", vt::any},  // a bool, or a list of parameter names
    key_spec{"additional_drop_params", vt::list},
    key_spec{"litellm_credential_name", vt::string},
    key_spec{"max_budget", vt::number, "ignored: no per-deployment budgets (keys, teams, users, end users and the proxy have budgets)"},
    key_spec{"budget_duration", vt::string, "ignored: no per-deployment budgets"},
    key_spec{"configurable_clientside_auth_params", vt::list, "ignored: clients cannot send their own api_key/api_base"},
    key_spec{"mock_timeout", vt::boolean, "ignored"},
    key_spec{"stream", vt::boolean, "ignored: the request decides whether to stream"},
    // OpenAI request params (defaults for every call)
    key_spec{"temperature", vt::number},
    key_spec{"top_p", vt::number},
    key_spec{"n", vt::integer},
    key_spec{"max_tokens", vt::integer},
    key_spec{"max_completion_tokens", vt::integer},
    key_spec{"stop", vt::string_or_list},
    key_spec{"presence_penalty", vt::number},
    key_spec{"frequency_penalty", vt::number},
    key_spec{"logit_bias", vt::mapping},
    key_spec{"user", vt::string},
    key_spec{"seed", vt::integer},
    key_spec{"response_format", vt::any},
    key_spec{"tools", vt::list},
    key_spec{"tool_choice", vt::any},
    key_spec{"parallel_tool_calls", vt::boolean},
    key_spec{"reasoning_effort", vt::string},
    key_spec{"logprobs", vt::boolean},
    key_spec{"top_logprobs", vt::integer},
    key_spec{"stream_options", vt::mapping},
    key_spec{"extra_body", vt::mapping},
    key_spec{"modalities", vt::list},
    key_spec{"audio", vt::any},
    key_spec{"prediction", vt::any},
    key_spec{"service_tier", vt::string},
    key_spec{"web_search_options", vt::any},
    key_spec{"metadata", vt::any, "ignored: not sent upstream"},
    // Anthropic
    key_spec{"thinking", vt::mapping},
    key_spec{"top_k", vt::number},
    // Azure (Entra ID)
    key_spec{"azure_ad_token", vt::string},
    key_spec{"tenant_id", vt::string},
    key_spec{"client_id", vt::string},
    key_spec{"client_secret", vt::string},
    // LiteLLM's username/password grant (azure.identity's UsernamePasswordCredential) is
    // not implemented: requests go out with the deployment's other credentials, if any.
    key_spec{"azure_username", vt::string, "ignored: no Entra ID username/password sign-in; use tenant_id, client_id and client_secret, azure_ad_token or api_key"},
    key_spec{"azure_password", vt::string, "ignored: no Entra ID username/password sign-in; use tenant_id, client_id and client_secret, azure_ad_token or api_key"},
    key_spec{"azure_scope", vt::string},
    // Ollama
    key_spec{"keep_alive", vt::any},
    key_spec{"format", vt::any},
    key_spec{"num_ctx", vt::integer},
    key_spec{"num_predict", vt::integer},
    key_spec{"repeat_penalty", vt::number},
    key_spec{"repeat_last_n", vt::integer},
    key_spec{"mirostat", vt::integer},
    key_spec{"mirostat_eta", vt::number},
    key_spec{"mirostat_tau", vt::number},
    key_spec{"num_gpu", vt::integer},
    key_spec{"num_thread", vt::integer},
    key_spec{"tfs_z", vt::number},
    // Vertex AI
    key_spec{"vertex_project", vt::string},
    key_spec{"vertex_location", vt::string},
    key_spec{"vertex_credentials", vt::any},
    // Bedrock
    key_spec{"aws_access_key_id", vt::string},
    key_spec{"aws_secret_access_key", vt::string},
    key_spec{"aws_session_token", vt::string},
    key_spec{"aws_region_name", vt::string},
    // Roles and profiles need calls to STS or files of the AWS CLI (docs/bedrock.md): the
    // request is signed with the keys above, or the AWS_* variables, without them.
    key_spec{"aws_role_name", vt::string, "ignored: no STS AssumeRole; requests are signed with aws_access_key_id/aws_secret_access_key/aws_session_token or the AWS_* variables"},
    key_spec{"aws_session_name", vt::string, "ignored: no STS AssumeRole; requests are signed with aws_access_key_id/aws_secret_access_key/aws_session_token or the AWS_* variables"},
    key_spec{"aws_profile_name", vt::string, "ignored: AWS profiles are not read; requests are signed with aws_access_key_id/aws_secret_access_key/aws_session_token or the AWS_* variables"},
    key_spec{"aws_bedrock_runtime_endpoint", vt::string},
};

// model_info is free-form in LiteLLM (its docs show `additionalProp1`), so it is open;
// these keys are type-checked.
constexpr std::array model_info_keys{
    key_spec{"id", vt::string},
    key_spec{"mode", vt::string},
    key_spec{"base_model", vt::string},
    key_spec{"access_groups", vt::list},
    key_spec{"max_tokens", vt::integer},
    key_spec{"max_input_tokens", vt::integer},
    key_spec{"max_output_tokens", vt::integer},
    key_spec{"input_cost_per_token", vt::number},
    key_spec{"output_cost_per_token", vt::number},
    key_spec{"input_cost_per_second", vt::number},
    key_spec{"output_cost_per_second", vt::number},
    key_spec{"cache_creation_input_token_cost", vt::number},
    key_spec{"cache_read_input_token_cost", vt::number},
    key_spec{"health_check_model", vt::string},
    key_spec{"allowed_fails", vt::integer},
    key_spec{"allowed_fails_policy", vt::mapping},
    key_spec{"cooldown_time", vt::number},
    key_spec{"metadata", vt::any},
    key_spec{"description", vt::string},
    key_spec{"tier", vt::string},
};

// ---- router_settings -------------------------------------------------------------------
constexpr std::array router_settings_keys{
    key_spec{"routing_strategy", vt::string},
    key_spec{"routing_strategy_args", vt::mapping},
    key_spec{"redis_host", vt::string},
    key_spec{"redis_port", vt::integer},
    key_spec{"redis_password", vt::string},
    key_spec{"redis_url", vt::string},
    key_spec{"redis_db", vt::integer},
    key_spec{"enable_pre_call_checks", vt::boolean},
    key_spec{"enable_pre_call_check", vt::boolean, "ignored: the key is enable_pre_call_checks"},
    key_spec{"optional_pre_call_checks", vt::list, "ignored: only the context-window and order checks of enable_pre_call_checks run"},
    key_spec{"allowed_fails", vt::integer},
    key_spec{"allowed_fails_policy", vt::mapping},
    key_spec{"cooldown_time", vt::number},
    key_spec{"disable_cooldowns", vt::boolean},
    key_spec{"enable_tag_filtering", vt::boolean},
    key_spec{"tag_filtering_match_any", vt::boolean},
    key_spec{"retry_policy", vt::mapping},
    key_spec{"model_group_retry_policy", vt::mapping},
    key_spec{"retry_after", vt::number},
    key_spec{"num_retries", vt::integer},
    key_spec{"timeout", vt::number},
    key_spec{"stream_timeout", vt::number},
    key_spec{"fallbacks", vt::list},
    key_spec{"context_window_fallbacks", vt::list},
    key_spec{"content_policy_fallbacks", vt::list},
    key_spec{"default_fallbacks", vt::list},
    key_spec{"max_fallbacks", vt::integer},
    key_spec{"model_group_alias", vt::mapping},
    key_spec{"default_max_parallel_requests", vt::integer, "ignored: only litellm_params.max_parallel_requests limits a deployment"},
    key_spec{"default_priority", vt::integer, "ignored: no priority queue; requests are served in arrival order"},
    key_spec{"polling_interval", vt::number, "ignored"},
    key_spec{"default_litellm_params", vt::mapping},
    key_spec{"debug_level", vt::string, "ignored: use --debug"},
    key_spec{"set_verbose", vt::boolean, "ignored: use --debug"},
    key_spec{"client_ttl", vt::integer, "ignored: upstream connections are pooled per host"},
    key_spec{"cache_kwargs", vt::mapping, "ignored: litellm_settings.cache_params configures the response cache"},
    key_spec{"cache_responses", vt::boolean, "ignored: litellm_settings.cache turns the response cache on"},
    key_spec{"caching_groups", vt::list, "ignored: cache keys use the requested model"},
    key_spec{"alerting_config", vt::any, "ignored: alerts go to SLACK_WEBHOOK_URL / WEBHOOK_URL"},
    key_spec{"assistants_config", vt::any, "ignored: no Assistants API"},
    key_spec{"provider_budget_config", vt::mapping, "ignored: no provider budgets (provider-budget-routing is served as simple-shuffle)"},
    key_spec{"router_general_settings", vt::mapping, "ignored"},
    key_spec{"deployment_affinity_ttl_seconds", vt::integer, "ignored: no deployment affinity"},
    key_spec{"ignore_invalid_deployments", vt::boolean},
    key_spec{"search_tools", vt::list, "ignored: no search tools"},
    key_spec{"guardrail_list", vt::list, "ignored: no guardrails"},
};

// ---- litellm_settings ------------------------------------------------------------------
// LiteLLM sets every key here as an attribute of the `litellm` module; these are the
// documented ones.
constexpr std::array litellm_settings_keys{
    key_spec{"drop_params", vt::any},  // a bool, or a list of parameter names
    key_spec{"additional_drop_params", vt::list},
    key_spec{"modify_params", vt::boolean, "ignored: requests are sent as written"},
    key_spec{"num_retries", vt::integer},
    key_spec{"request_timeout", vt::number},
    key_spec{"force_ipv4", vt::boolean, "ignored: the resolver's order is used"},
    key_spec{"ssl_verify", vt::any},
    key_spec{"ssl_certificate", vt::string, "ignored: no client certificate is sent upstream"},
    key_spec{"allowed_fails", vt::integer},
    key_spec{"fallbacks", vt::list},
    key_spec{"context_window_fallbacks", vt::list},
    key_spec{"content_policy_fallbacks", vt::list},
    key_spec{"default_fallbacks", vt::list},
    key_spec{"model_group_alias", vt::mapping},
    key_spec{"cache", vt::boolean},
    key_spec{"cache_params", vt::mapping},
    key_spec{"success_callback", vt::string_or_list},
    key_spec{"failure_callback", vt::string_or_list},
    key_spec{"callbacks", vt::string_or_list},
    key_spec{"service_callbacks", vt::string_or_list, "ignored: no callbacks"},
    key_spec{"turn_off_message_logging", vt::boolean},
    key_spec{"redact_user_api_key_info", vt::boolean},
    key_spec{"redact_messages_in_exceptions", vt::boolean, "ignored"},
    key_spec{"langfuse_default_tags", vt::list, "ignored: no Langfuse callback"},
    key_spec{"s3_callback_params", vt::mapping, "ignored: no S3 callback"},
    key_spec{"json_logs", vt::boolean},
    key_spec{"set_verbose", vt::boolean, "ignored: use --debug"},
    key_spec{"enable_preview_features", vt::boolean, "ignored"},
    key_spec{"mcp_aliases", vt::mapping, "ignored: no MCP gateway"},
    key_spec{"max_budget", vt::number},
    key_spec{"budget_duration", vt::string},
    key_spec{"timezone", vt::string},
    key_spec{"max_end_user_budget", vt::number},
    key_spec{"max_internal_user_budget", vt::number, "ignored: new users get the budget /user/new sets"},
    key_spec{"default_max_internal_user_budget", vt::number, "ignored: new users get the budget /user/new sets"},
    key_spec{"internal_user_budget_duration", vt::string, "ignored"},
    key_spec{"default_internal_user_params", vt::mapping},  // users a first UI sign-in creates (docs/sso.md)
    key_spec{"default_key_generate_params", vt::mapping},
    key_spec{"upperbound_key_generate_params", vt::mapping},
    key_spec{"default_team_params", vt::mapping},  // teams a sign-in creates for unknown groups (docs/sso.md)
    key_spec{"key_generation_settings", vt::mapping, "ignored: any admin may generate keys"},
    key_spec{"default_team_settings", vt::list, "ignored"},
    key_spec{"public_model_groups", vt::list, "ignored: /model_group/info lists every group the key may use"},
    key_spec{"public_model_groups_links", vt::mapping, "ignored"},
    key_spec{"disable_end_user_cost_tracking", vt::boolean, "ignored: end-user spend is tracked"},
    key_spec{"disable_end_user_cost_tracking_prometheus_only", vt::boolean, "ignored"},
    key_spec{"disable_add_transform_inline_image_block", vt::boolean, "ignored"},
    key_spec{"use_chat_completions_url_for_anthropic_messages", vt::boolean, "ignored: /v1/messages goes to Anthropic deployments natively"},
    key_spec{"disable_hf_tokenizer_download", vt::boolean, "ignored: no tokenizer downloads"},
    key_spec{"disable_token_counter", vt::boolean, "ignored"},
    key_spec{"enable_json_schema_validation", vt::boolean, "ignored: response_format is not validated locally"},
    key_spec{"enable_key_alias_format_validation", vt::boolean, "ignored"},
    key_spec{"disable_copilot_system_to_assistant", vt::boolean, "ignored"},
    key_spec{"LITELLM_DISABLE_STOP_SEQUENCE_LIMIT", vt::any, "ignored"},
    key_spec{"return_response_headers", vt::boolean, "ignored: provider headers are always passed on as llm_provider-*"},
    key_spec{"telemetry", vt::boolean, "ignored: no telemetry is sent"},
    key_spec{"guardrails", vt::list, "ignored: no guardrails"},
    key_spec{"extra_spend_tag_headers", vt::list, "ignored: spend tags come from the request body"},
    key_spec{"custom_prometheus_metadata_labels", vt::list, "ignored"},
    key_spec{"prometheus_initialize_budget_metrics", vt::boolean, "ignored"},
    key_spec{"require_auth_for_metrics_endpoint", vt::boolean},
    key_spec{"enable_end_user_cost_tracking_prometheus_only", vt::boolean},
    key_spec{"enable_azure_ad_token_refresh", vt::boolean},
    key_spec{"priority_reservation", vt::mapping, "ignored: no priority queue"},
};

// litellm_settings.cache_params (LiteLLM caching.md).
constexpr std::array cache_params_keys{
    key_spec{"type", vt::string},
    key_spec{"host", vt::string},
    key_spec{"port", vt::integer},
    key_spec{"password", vt::string},
    key_spec{"username", vt::string},
    key_spec{"url", vt::string},
    key_spec{"db", vt::integer},
    key_spec{"namespace", vt::string},
    key_spec{"ttl", vt::number},
    key_spec{"default_in_memory_ttl", vt::number},
    key_spec{"default_in_redis_ttl", vt::number},
    key_spec{"socket_timeout", vt::number},
    key_spec{"mode", vt::string},
    key_spec{"supported_call_types", vt::string_or_list},
    key_spec{"max_connections", vt::integer},
    key_spec{"redis_flush_size", vt::integer, "ignored: only the redis and local caches are supported"},
    key_spec{"redis_startup_nodes", vt::list, "ignored: only the redis and local caches are supported"},
    key_spec{"service_name", vt::string, "ignored: only the redis and local caches are supported"},
    key_spec{"sentinel_nodes", vt::list, "ignored: only the redis and local caches are supported"},
    key_spec{"sentinel_password", vt::string, "ignored: only the redis and local caches are supported"},
    key_spec{"gcp_service_account", vt::string, "ignored: only the redis and local caches are supported"},
    key_spec{"gcp_ssl_ca_certs", vt::string, "ignored: only the redis and local caches are supported"},
    key_spec{"ssl", vt::boolean},
    key_spec{"ssl_ca_certs", vt::string},
    key_spec{"ssl_cert_reqs", vt::any},
    key_spec{"ssl_check_hostname", vt::boolean},
    key_spec{"similarity_threshold", vt::number, "ignored: only the redis and local caches are supported"},
    key_spec{"redis_semantic_cache_embedding_model", vt::string, "ignored: only the redis and local caches are supported"},
    key_spec{"redis_semantic_cache_index_name", vt::string, "ignored: only the redis and local caches are supported"},
    key_spec{"qdrant_semantic_cache_embedding_model", vt::string, "ignored: only the redis and local caches are supported"},
    key_spec{"qdrant_collection_name", vt::string, "ignored: only the redis and local caches are supported"},
    key_spec{"qdrant_quantization_config", vt::string, "ignored: only the redis and local caches are supported"},
    key_spec{"qdrant_semantic_cache_vector_size", vt::integer, "ignored: only the redis and local caches are supported"},
    key_spec{"qdrant_api_base", vt::string, "ignored: only the redis and local caches are supported"},
    key_spec{"qdrant_api_key", vt::string, "ignored: only the redis and local caches are supported"},
    key_spec{"s3_bucket_name", vt::string, "ignored: only the redis and local caches are supported"},
    key_spec{"s3_region_name", vt::string, "ignored: only the redis and local caches are supported"},
    key_spec{"s3_api_version", vt::string, "ignored: only the redis and local caches are supported"},
    key_spec{"s3_use_ssl", vt::boolean, "ignored: only the redis and local caches are supported"},
    key_spec{"s3_verify", vt::any, "ignored: only the redis and local caches are supported"},
    key_spec{"s3_endpoint_url", vt::string, "ignored: only the redis and local caches are supported"},
    key_spec{"s3_aws_access_key_id", vt::string, "ignored: only the redis and local caches are supported"},
    key_spec{"s3_aws_secret_access_key", vt::string, "ignored: only the redis and local caches are supported"},
    key_spec{"s3_aws_session_token", vt::string, "ignored: only the redis and local caches are supported"},
    key_spec{"s3_config", vt::any, "ignored: only the redis and local caches are supported"},
    key_spec{"s3_path", vt::string, "ignored: only the redis and local caches are supported"},
    key_spec{"gcs_bucket_name", vt::string, "ignored: only the redis and local caches are supported"},
    key_spec{"gcs_path_service_account", vt::string, "ignored: only the redis and local caches are supported"},
    key_spec{"gcs_path", vt::string, "ignored: only the redis and local caches are supported"},
    key_spec{"disk_cache_dir", vt::string, "ignored: only the redis and local caches are supported"},
    key_spec{"disable_copilot_system_to_assistant", vt::boolean, "ignored: only the redis and local caches are supported"},
};

// litellm_settings.default_team_params: what /team/new fields a team created for an SSO
// group gets (LiteLLM's DefaultTeamSSOParams and team_member_permissions).
constexpr std::array default_team_params_keys{
    key_spec{"max_budget", vt::number},
    key_spec{"budget_duration", vt::string},
    key_spec{"models", vt::list},
    key_spec{"tpm_limit", vt::integer},
    key_spec{"rpm_limit", vt::integer},
    key_spec{"team_member_permissions", vt::list},
};

// ---- general_settings ------------------------------------------------------------------
constexpr std::array general_settings_keys{
    key_spec{"master_key", vt::string},
    key_spec{"database_url", vt::string},
    key_spec{"database_connection_pool_limit", vt::integer},
    key_spec{"database_connection_timeout", vt::number},
    key_spec{"allow_requests_on_db_unavailable", vt::boolean},
    key_spec{"store_model_in_db", vt::boolean},
    key_spec{"supported_db_objects", vt::list, "ignored"},
    key_spec{"disable_prisma_schema_update", vt::boolean, "ignored: the gateway's own migrations run at start"},
    key_spec{"max_request_size_mb", vt::number},
    key_spec{"max_response_size_mb", vt::number},
    key_spec{"completion_model", vt::string, "ignored: the request's model is used"},
    key_spec{"embedding_model", vt::string, "ignored: the request's model is used"},
    key_spec{"image_generation_model", vt::string, "ignored: no image generation"},
    key_spec{"moderation_model", vt::string, "ignored: no moderation endpoint"},
    key_spec{"max_parallel_requests", vt::integer},
    key_spec{"global_max_parallel_requests", vt::integer},
    key_spec{"forward_client_headers_to_llm_api", vt::boolean},
    key_spec{"forward_openai_org_id", vt::boolean, "ignored: the deployment's organization is sent"},
    key_spec{"disable_spend_logs", vt::boolean},
    key_spec{"disable_error_logs", vt::boolean, "ignored: failed requests are logged"},
    key_spec{"disable_spend_updates", vt::boolean, "ignored: spend is always recorded"},
    key_spec{"store_prompts_in_spend_logs", vt::boolean},
    key_spec{"maximum_spend_logs_retention_period", vt::string},
    key_spec{"maximum_spend_logs_retention_interval", vt::string, "ignored: retention runs daily"},
    key_spec{"proxy_batch_write_at", vt::number, "ignored: spend rows are flushed every 500 ms or 256 rows"},
    key_spec{"proxy_batch_polling_interval", vt::number, "ignored"},
    key_spec{"proxy_budget_rescheduler_min_time", vt::number, "ignored: budgets reset at their boundary"},
    key_spec{"proxy_budget_rescheduler_max_time", vt::number, "ignored: budgets reset at their boundary"},
    key_spec{"disable_reset_budget", vt::boolean, "ignored: budgets always reset"},
    key_spec{"use_redis_transaction_buffer", vt::boolean, "ignored"},
    key_spec{"background_health_checks", vt::boolean},
    key_spec{"health_check_interval", vt::number},
    key_spec{"health_check_details", vt::boolean, "ignored: /health returns the full entries"},
    key_spec{"alerting", vt::list},
    key_spec{"alerting_threshold", vt::number},
    key_spec{"alerting_args", vt::mapping},
    key_spec{"alert_types", vt::list},
    key_spec{"alert_to_webhook_url", vt::mapping, "ignored: alerts go to SLACK_WEBHOOK_URL / WEBHOOK_URL"},
    key_spec{"spend_report_frequency", vt::string, "ignored: no spend reports are sent"},
    key_spec{"allowed_routes", vt::list},
    key_spec{"admin_only_routes", vt::list},
    key_spec{"public_routes", vt::list},
    key_spec{"cors_allow_origins", vt::list},
    key_spec{"cors_allow_credentials", vt::boolean},
    key_spec{"allowed_ips", vt::list},
    key_spec{"ssl_certfile_path", vt::string},
    key_spec{"ssl_keyfile_path", vt::string},
    key_spec{"use_x_forwarded_for", vt::any, "ignored"},
    key_spec{"custom_auth", vt::string, "not supported: keys are checked against the master key and the database"},
    key_spec{"custom_key_generate", vt::string, "ignored"},
    key_spec{"custom_sso", vt::string, "ignored: no Python SSO hook runs; the built-in OIDC sign-in does"},
    key_spec{"enable_jwt_auth", vt::boolean},  // docs/sso.md, "JWT auth for the API"
    key_spec{"litellm_jwtauth", vt::mapping},
    key_spec{"enable_oauth2_auth", vt::boolean, "not supported"},
    key_spec{"enable_oauth2_proxy_auth", vt::boolean, "not supported"},
    key_spec{"oauth2_config_mappings", vt::mapping, "ignored"},
    key_spec{"ui_access_mode", vt::any},  // "admin_only": only admins may sign in (docs/sso.md)
    key_spec{"proxy_admin_email", vt::any},  // who becomes proxy_admin at a UI sign-in
    key_spec{"user_api_key_cache_ttl", vt::number, "ignored: keys are cached and invalidated on change"},
    key_spec{"litellm_key_header_name", vt::string},
    key_spec{"allow_client_side_credentials", vt::boolean, "ignored: clients cannot send their own provider credentials"},
    key_spec{"allow_user_auth", vt::boolean, "ignored"},
    key_spec{"enforce_user_param", vt::boolean},
    key_spec{"enforced_params", vt::list, "NOT enforced"},
    key_spec{"reject_clientside_metadata_tags", vt::boolean, "ignored: client tags are accepted"},
    key_spec{"infer_model_from_keys", vt::boolean, "ignored"},
    key_spec{"default_team_disabled", vt::boolean, "ignored"},
    key_spec{"disable_master_key_return", vt::boolean, "ignored"},
    key_spec{"disable_adding_master_key_hash_to_db", vt::boolean, "ignored"},
    key_spec{"disable_retry_on_max_parallel_request_limit_error", vt::boolean, "ignored"},
    key_spec{"disable_responses_id_security", vt::boolean, "ignored"},
    key_spec{"use_client_credentials_pass_through_routes", vt::boolean, "ignored: no pass-through routes"},
    key_spec{"pass_through_endpoints", vt::list, "ignored: no pass-through routes"},
    key_spec{"service_account_settings", vt::any, "ignored"},
    key_spec{"key_management_system", vt::string, "ignored: secrets come from the config and the environment"},
    key_spec{"key_management_settings", vt::any, "ignored"},
    key_spec{"use_azure_key_vault", vt::boolean, "ignored: secrets come from the config and the environment"},
    key_spec{"use_google_kms", vt::boolean, "ignored: secrets come from the config and the environment"},
    key_spec{"litellm_license", vt::string, "ignored"},
    key_spec{"user_mcp_management_mode", vt::string, "ignored: no MCP gateway"},
    key_spec{"user_header_name", vt::string, "ignored: end users come from `user` or x-litellm-end-user-id"},
};

constexpr std::array routing_strategies{
    std::string_view{"simple-shuffle"},
    std::string_view{"least-busy"},
    std::string_view{"usage-based-routing"},
    std::string_view{"usage-based-routing-v2"},
    std::string_view{"latency-based-routing"},
    std::string_view{"cost-based-routing"},
    std::string_view{"provider-budget-routing"},
};

const section_spec top_level_spec{top_level_keys, false};
const section_spec model_entry_spec{model_entry_keys, false};
const section_spec litellm_params_spec{litellm_params_keys, false};
const section_spec model_info_spec{model_info_keys, true};
const section_spec router_settings_spec{router_settings_keys, false};
const section_spec litellm_settings_spec{litellm_settings_keys, false};
const section_spec cache_params_spec{cache_params_keys, false};
const section_spec default_team_params_spec{default_team_params_keys, false};
const section_spec general_settings_spec{general_settings_keys, false};

}  // namespace

const section_spec& spec_of(section s) {
  switch (s) {
    case section::top_level:
      return top_level_spec;
    case section::model_entry:
      return model_entry_spec;
    case section::litellm_params:
      return litellm_params_spec;
    case section::model_info:
      return model_info_spec;
    case section::router_settings:
      return router_settings_spec;
    case section::litellm_settings:
      return litellm_settings_spec;
    case section::cache_params:
      return cache_params_spec;
    case section::default_team_params:
      return default_team_params_spec;
    case section::general_settings:
      return general_settings_spec;
  }
  return top_level_spec;
}

const key_spec* find_key(section s, std::string_view key) {
  for (const auto& k : spec_of(s).keys) {
    if (k.name == key) {
      return &k;
    }
  }
  return nullptr;
}

std::string_view ignored_top_level_note(std::string_view key) {
  for (const auto& k : ignored_top_level) {
    if (k.name == key) {
      return k.note;
    }
  }
  return {};
}

bool is_known_routing_strategy(std::string_view name) {
  for (auto s : routing_strategies) {
    if (s == name) {
      return true;
    }
  }
  return false;
}

bool is_served_routing_strategy(std::string_view name) {
  // What router::router maps to a strategy of its own; any other value is served as
  // simple-shuffle.
  return name == "simple-shuffle" || name == "least-busy" || name == "latency-based-routing" ||
         name == "usage-based-routing" || name == "usage-based-routing-v2";
}

}  // namespace switchyard::config::detail
