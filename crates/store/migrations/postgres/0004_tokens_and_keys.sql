-- OIDC: signing keys (private part as PKCS#8 PEM; retired keys stay published until their
-- tokens expire), issued access tokens (for revocation and introspection) and refresh tokens
-- (opaque, hashed, grouped in families for rotation and reuse detection).

CREATE TABLE signing_keys (
    kid TEXT PRIMARY KEY,
    algorithm TEXT NOT NULL,
    private_pem TEXT NOT NULL,
    public_jwk TEXT NOT NULL,
    created TEXT NOT NULL,
    retired TEXT
);

CREATE TABLE access_tokens (
    jti TEXT PRIMARY KEY,
    provider_id BIGINT NOT NULL REFERENCES providers(id) ON DELETE CASCADE,
    user_id BIGINT REFERENCES users(id) ON DELETE CASCADE,
    scope TEXT NOT NULL,
    code_hash TEXT,
    created TEXT NOT NULL,
    expires TEXT NOT NULL,
    revoked BOOLEAN NOT NULL DEFAULT FALSE
);
CREATE INDEX access_tokens_code ON access_tokens(code_hash);

CREATE TABLE refresh_tokens (
    token_hash TEXT PRIMARY KEY,
    family TEXT NOT NULL,
    provider_id BIGINT NOT NULL REFERENCES providers(id) ON DELETE CASCADE,
    user_id BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    scope TEXT NOT NULL,
    nonce TEXT NOT NULL DEFAULT '',
    code_hash TEXT,
    created TEXT NOT NULL,
    expires TEXT NOT NULL,
    used BOOLEAN NOT NULL DEFAULT FALSE,
    revoked BOOLEAN NOT NULL DEFAULT FALSE
);
CREATE INDEX refresh_tokens_family ON refresh_tokens(family);
CREATE INDEX refresh_tokens_code ON refresh_tokens(code_hash);
