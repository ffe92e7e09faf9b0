-- 0012: each key's spend per UTC day, for "top keys" of the whole proxy
-- (/global/spend/keys), in a narrow table of its own. 0010 served that list from a partial
-- index over daily_spend that included `spend`; a column in an index makes every update of
-- it a non-HOT update, so each batch of the spend writer wrote new entries into all three
-- daily_spend indexes for every rollup row it touched (and left the old ones for vacuum).
-- Without it the rollup updates stay HOT again (fillfactor 70, 0005), and the list sums
-- days x keys rows of three columns here. The spend writer adds to it in the statement that
-- writes the rollups. See docs/spend.md, "Rollups".
-- Applied by migrate_blocking in one transaction; no BEGIN/COMMIT here.

CREATE TABLE daily_key_spend (
  day     date NOT NULL,
  api_key text NOT NULL,              -- '' for the master key and requests without a key
  spend   double precision NOT NULL DEFAULT 0,
  PRIMARY KEY (day, api_key)
) WITH (fillfactor = 70);

INSERT INTO daily_key_spend (day, api_key, spend)
SELECT day, api_key, sum(spend) FROM daily_spend WHERE entity_type = 'all' GROUP BY 1, 2;

DROP INDEX daily_spend_all_keys;
