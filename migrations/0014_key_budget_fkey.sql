-- 0014: a key's budget_id references budgets, as LiteLLM's key table does (ON DELETE SET
-- NULL: deleting a budget clears it on the keys that name it). The key routes check the
-- budget exists before they write, but a /budget/delete between that check and the write
-- left the key naming a budget that no longer exists (and a budget made later under the
-- same id would bound it again); with the key, the write now fails and the caller gets
-- the 404 `Budget not found` of the check (docs/virtual-keys.md).
-- A database may hold such dangling ids already: they are cleared first, each audited
-- ("updated" by 'migration 0014', before and after), and counted in a WARNING that the
-- gateway logs ("migrations: ..."), so the constraint never fails to apply.
-- Applied by migrate_blocking in one transaction; no BEGIN/COMMIT here.

DO $$
DECLARE
  cleared bigint;
BEGIN
  WITH dangling AS (
    SELECT k.token, to_jsonb(k) AS before FROM verification_tokens k
    WHERE k.budget_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM budgets b WHERE b.budget_id = k.budget_id)
    FOR UPDATE OF k
  ), cleared_keys AS (
    UPDATE verification_tokens k SET budget_id = NULL, updated_at = now(), updated_by = 'migration 0014'
    FROM dangling d WHERE k.token = d.token
    RETURNING k.token, d.before, to_jsonb(k) AS after
  )
  INSERT INTO audit_log (changed_by, action, table_name, object_id, before, after)
  SELECT 'migration 0014', 'updated', 'verification_tokens', token, before, after FROM cleared_keys;
  GET DIAGNOSTICS cleared = ROW_COUNT;
  IF cleared > 0 THEN
    RAISE WARNING '0014: % key(s) named a budget that does not exist; their budget_id is now null (audit_log rows by ''migration 0014'')', cleared;
  END IF;
END $$;

-- No index on budget_id: only a budget's delete looks keys up by it, as before this
-- migration (delete_entities_blocking cleared them with an UPDATE of its own).
ALTER TABLE verification_tokens ADD CONSTRAINT verification_tokens_budget_id_fkey
  FOREIGN KEY (budget_id) REFERENCES budgets (budget_id) ON DELETE SET NULL;
