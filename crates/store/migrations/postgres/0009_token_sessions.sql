-- Tokens remember the IdP session they were issued in and when that session authenticated:
-- ending the session (logout, revocation) ends its access tokens and refresh families, and
-- `auth_time` in ID tokens is the session's login, not the user's latest one. No foreign key to
-- sessions: a session that merely expires must not take offline refresh families with it.

ALTER TABLE authorization_codes ADD COLUMN auth_time TEXT;
ALTER TABLE access_tokens ADD COLUMN session_uuid TEXT;
ALTER TABLE refresh_tokens ADD COLUMN session_uuid TEXT;
ALTER TABLE refresh_tokens ADD COLUMN auth_time TEXT;
CREATE INDEX access_tokens_session ON access_tokens(session_uuid);
CREATE INDEX access_tokens_user ON access_tokens(user_id);
CREATE INDEX refresh_tokens_session ON refresh_tokens(session_uuid);
CREATE INDEX refresh_tokens_user ON refresh_tokens(user_id);
