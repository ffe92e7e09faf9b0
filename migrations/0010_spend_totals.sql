-- 0010: daily totals per model for the whole proxy, each team and each organisation,
-- without the key dimension of daily_spend. A month of daily_spend's 'all' rows is one row
-- per (day, key, model): 300,000 rows for 10,000 busy keys, which every overview chart and
-- "top models" list had to sum. Here the same month is (days x models) rows for 'all' and
-- (days x teams x models) for the teams. The spend writer adds to both tables in the
-- transaction that writes the spend rows; the rows already rolled up are copied once.
-- Read by the reports that need no key breakdown (docs/spend.md, "Rollups").
-- Applied by migrate_blocking in one transaction; no BEGIN/COMMIT here.

CREATE TABLE daily_spend_totals (
  entity_type                 text NOT NULL,   -- all (entity_id ''), team, org
  entity_id                   text NOT NULL,
  day                         date NOT NULL,
  model                       text NOT NULL DEFAULT '',
  prompt_tokens               bigint NOT NULL DEFAULT 0,
  completion_tokens           bigint NOT NULL DEFAULT 0,
  cache_read_input_tokens     bigint NOT NULL DEFAULT 0,
  cache_creation_input_tokens bigint NOT NULL DEFAULT 0,
  spend                       double precision NOT NULL DEFAULT 0,
  api_requests                bigint NOT NULL DEFAULT 0,
  successful_requests         bigint NOT NULL DEFAULT 0,
  failed_requests             bigint NOT NULL DEFAULT 0,
  PRIMARY KEY (entity_type, day, entity_id, model)
);

INSERT INTO daily_spend_totals (entity_type, entity_id, day, model, prompt_tokens, completion_tokens,
                                cache_read_input_tokens, cache_creation_input_tokens, spend, api_requests,
                                successful_requests, failed_requests)
SELECT entity_type, entity_id, day, model, sum(prompt_tokens), sum(completion_tokens),
       sum(cache_read_input_tokens), sum(cache_creation_input_tokens), sum(spend), sum(api_requests),
       sum(successful_requests), sum(failed_requests)
FROM daily_spend
WHERE entity_type IN ('all', 'team', 'org')
GROUP BY 1, 2, 3, 4;

-- "Top keys" of the whole proxy sums the keys' 'all' rows of the range: from this index
-- alone (an index-only scan), not from the table's pages.
CREATE INDEX daily_spend_all_keys ON daily_spend (day) INCLUDE (entity_id, api_key, spend)
  WHERE entity_type = 'all';
