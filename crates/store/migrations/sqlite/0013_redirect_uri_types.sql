-- Each redirect URI says what it is for, as Authentik's `redirect_uri_type` does: authorization
-- responses go only to `authorization` entries, end-session returns the browser only to
-- `logout` entries (`post_logout_redirect_uri`). Existing entries were callbacks.

ALTER TABLE oauth2_redirect_uris ADD COLUMN redirect_uri_type TEXT NOT NULL DEFAULT 'authorization';
