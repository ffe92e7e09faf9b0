-- 0004: a daily rollup of every request (entity_type 'all', entity_id ''), whoever made it,
-- so that global reports (/global/spend, /global/spend/report, /spend/logs summaries) read
-- daily_spend and never scan spend_logs; requests made with the master key or by keys
-- without a user or team are in no other rollup. The spend writer adds these rows from now
-- on; the rows already logged are rolled up here once.
-- Applied by migrate_blocking in one transaction; no BEGIN/COMMIT here.

INSERT INTO daily_spend AS d (entity_type, entity_id, day, api_key, model, model_group, custom_llm_provider,
                              prompt_tokens, completion_tokens, cache_read_input_tokens,
                              cache_creation_input_tokens, spend, api_requests, successful_requests,
                              failed_requests)
SELECT 'all', '', (start_time AT TIME ZONE 'UTC')::date, api_key, model, coalesce(model_group, ''),
       coalesce(custom_llm_provider, ''), sum(prompt_tokens), sum(completion_tokens), sum(cached_tokens),
       sum(cache_creation_tokens), sum(spend), count(*), count(*) FILTER (WHERE status = 'success'),
       count(*) FILTER (WHERE status <> 'success')
FROM spend_logs
GROUP BY 3, 4, 5, 6, 7
ON CONFLICT (entity_type, day, entity_id, api_key, model, model_group, custom_llm_provider) DO UPDATE SET
  prompt_tokens = d.prompt_tokens + excluded.prompt_tokens,
  completion_tokens = d.completion_tokens + excluded.completion_tokens,
  cache_read_input_tokens = d.cache_read_input_tokens + excluded.cache_read_input_tokens,
  cache_creation_input_tokens = d.cache_creation_input_tokens + excluded.cache_creation_input_tokens,
  spend = d.spend + excluded.spend,
  api_requests = d.api_requests + excluded.api_requests,
  successful_requests = d.successful_requests + excluded.successful_requests,
  failed_requests = d.failed_requests + excluded.failed_requests;
