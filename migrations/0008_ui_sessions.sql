-- 0008: sign-in for the admin UI (docs/sso.md). Sessions live here, not in the cookie, so
-- signing out ends a session on every instance at once; the cookie holds a random value
-- whose sha256 is the key (a copy of this table gives no usable cookie). sso_logins holds
-- a sign-in between the redirect to the identity provider and its return: the state,
-- the PKCE verifier and the nonce the ID token must carry; a row is taken (deleted) by
-- the callback that uses it, so a state or its nonce works once.

CREATE TABLE ui_sessions (
  session_hash text PRIMARY KEY,
  user_id      text NOT NULL REFERENCES users(user_id) ON DELETE CASCADE,
  csrf_token   text NOT NULL,
  provider     text NOT NULL,  -- password, microsoft, google, generic
  created_at   timestamptz NOT NULL DEFAULT now(),
  expires_at   timestamptz NOT NULL,
  ended_at     timestamptz
);
CREATE INDEX ui_sessions_user_idx ON ui_sessions (user_id);

CREATE TABLE sso_logins (
  state         text PRIMARY KEY,
  code_verifier text NOT NULL,
  nonce         text NOT NULL,
  provider      text NOT NULL,
  created_at    timestamptz NOT NULL DEFAULT now()
);
