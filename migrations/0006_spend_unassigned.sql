-- 0006: daily rollups of the requests of no team ('no_team') and of no end user
-- ('no_end_user'), entity_id ''. /global/spend/report lists them as "Unassigned Team" and
-- as a null customer; with their own rows it reads one rollup instead of subtracting every
-- team's rows from the 'all' rows at each call. The spend writer adds these rows from now
-- on; here they are made once from the rollups already written (the 'all' rows less the
-- entity's, where requests remain). See docs/spend.md.
-- Applied by migrate_blocking in one transaction; no BEGIN/COMMIT here.

INSERT INTO daily_spend AS d (entity_type, entity_id, day, api_key, model, model_group, custom_llm_provider,
                              prompt_tokens, completion_tokens, cache_read_input_tokens,
                              cache_creation_input_tokens, spend, api_requests, successful_requests,
                              failed_requests)
SELECT u.entity_type, '', s.day, s.api_key, s.model, s.model_group, s.custom_llm_provider,
       sum(CASE WHEN s.entity_type = 'all' THEN 1 ELSE -1 END * s.prompt_tokens),
       sum(CASE WHEN s.entity_type = 'all' THEN 1 ELSE -1 END * s.completion_tokens),
       sum(CASE WHEN s.entity_type = 'all' THEN 1 ELSE -1 END * s.cache_read_input_tokens),
       sum(CASE WHEN s.entity_type = 'all' THEN 1 ELSE -1 END * s.cache_creation_input_tokens),
       sum(CASE WHEN s.entity_type = 'all' THEN s.spend ELSE -s.spend END),
       sum(CASE WHEN s.entity_type = 'all' THEN 1 ELSE -1 END * s.api_requests),
       sum(CASE WHEN s.entity_type = 'all' THEN 1 ELSE -1 END * s.successful_requests),
       sum(CASE WHEN s.entity_type = 'all' THEN 1 ELSE -1 END * s.failed_requests)
FROM (VALUES ('no_team', 'team'), ('no_end_user', 'end_user')) u(entity_type, of_type)
JOIN daily_spend s ON s.entity_type = u.of_type OR (s.entity_type = 'all' AND s.entity_id = '')
GROUP BY u.entity_type, s.day, s.api_key, s.model, s.model_group, s.custom_llm_provider
HAVING sum(CASE WHEN s.entity_type = 'all' THEN 1 ELSE -1 END * s.api_requests) > 0
ON CONFLICT (entity_type, day, entity_id, api_key, model, model_group, custom_llm_provider) DO NOTHING;
