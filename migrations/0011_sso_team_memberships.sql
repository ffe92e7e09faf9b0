-- 0011: team memberships that follow the identity provider's groups claim (docs/sso.md,
-- "Teams from a groups claim"). A membership the UI sign-in added because the user's groups
-- claim named the team is marked sso_managed; a later sign-in whose claim no longer names
-- the team removes it. Memberships added any other way (/team/member_add, /team/new or
-- /team/update members_with_roles, /user/new teams, default_internal_user_params.teams)
-- keep false and are never removed by a sign-in; adding a marked membership by hand
-- clears the mark, so the person who added it decides from then on.

ALTER TABLE team_memberships ADD COLUMN sso_managed boolean NOT NULL DEFAULT false;
CREATE INDEX team_memberships_sso_managed_idx ON team_memberships (user_id) WHERE sso_managed;
