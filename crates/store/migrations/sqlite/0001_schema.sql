-- Gatehouse schema, version 1. One table per entity of SPEC §2, with the unique and foreign-key
-- constraints the domain needs, so both databases refuse what the domain refuses.
-- Timestamps are RFC 3339 UTC text with microseconds (fixed width, so they sort as text).
-- Booleans are INTEGER 0/1 on SQLite, BOOLEAN on PostgreSQL. UUIDs are text. JSON appears only for free-form attributes and per-kind settings.
-- The PostgreSQL twin in ../postgres differs only in identity columns and integer width.

CREATE TABLE users (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    uuid TEXT NOT NULL UNIQUE,
    username TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL DEFAULT '',
    email TEXT NOT NULL DEFAULT '',
    user_type TEXT NOT NULL DEFAULT 'internal',
    path TEXT NOT NULL DEFAULT 'users',
    is_active INTEGER NOT NULL DEFAULT TRUE,
    attributes TEXT NOT NULL DEFAULT '{}',
    password_hash TEXT,
    password_change_date TEXT NOT NULL,
    date_joined TEXT NOT NULL,
    last_login TEXT,
    last_updated TEXT NOT NULL
);

CREATE TABLE groups (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    uuid TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL UNIQUE,
    is_superuser INTEGER NOT NULL DEFAULT FALSE,
    attributes TEXT NOT NULL DEFAULT '{}',
    last_updated TEXT NOT NULL
);

-- A group may have several parents (a DAG); cycles are refused by the store before insert.
CREATE TABLE group_parents (
    group_id INTEGER NOT NULL REFERENCES groups(id) ON DELETE CASCADE,
    parent_id INTEGER NOT NULL REFERENCES groups(id) ON DELETE CASCADE,
    PRIMARY KEY (group_id, parent_id),
    CHECK (group_id <> parent_id)
);

CREATE TABLE group_members (
    group_id INTEGER NOT NULL REFERENCES groups(id) ON DELETE CASCADE,
    user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    PRIMARY KEY (group_id, user_id)
);
CREATE INDEX group_members_user ON group_members(user_id);

CREATE TABLE flows (
    uuid TEXT PRIMARY KEY,
    slug TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    title TEXT NOT NULL,
    designation TEXT NOT NULL,
    authentication TEXT NOT NULL DEFAULT 'none',
    policy_engine_mode TEXT NOT NULL DEFAULT 'any',
    layout TEXT NOT NULL DEFAULT 'stacked',
    denied_action TEXT NOT NULL DEFAULT 'message_continue',
    compatibility_mode INTEGER NOT NULL DEFAULT FALSE,
    background TEXT NOT NULL DEFAULT ''
);

-- Stage settings differ per kind (e.g. a user_login stage's session duration); they are a typed
-- struct per kind in code, validated before they are written.
CREATE TABLE stages (
    uuid TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    kind TEXT NOT NULL,
    settings TEXT NOT NULL DEFAULT '{}'
);

CREATE TABLE flow_stage_bindings (
    uuid TEXT PRIMARY KEY,
    flow_uuid TEXT NOT NULL REFERENCES flows(uuid) ON DELETE CASCADE,
    stage_uuid TEXT NOT NULL REFERENCES stages(uuid) ON DELETE CASCADE,
    position INTEGER NOT NULL,
    evaluate_on_plan INTEGER NOT NULL DEFAULT FALSE,
    re_evaluate_policies INTEGER NOT NULL DEFAULT TRUE,
    policy_engine_mode TEXT NOT NULL DEFAULT 'any',
    UNIQUE (flow_uuid, stage_uuid, position)
);

CREATE TABLE policies (
    uuid TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    kind TEXT NOT NULL,
    execution_logging INTEGER NOT NULL DEFAULT FALSE,
    settings TEXT NOT NULL DEFAULT '{}'
);

CREATE TABLE providers (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL UNIQUE,
    kind TEXT NOT NULL CHECK (kind IN ('oauth2', 'proxy')),
    authorization_flow TEXT NOT NULL REFERENCES flows(uuid),
    invalidation_flow TEXT REFERENCES flows(uuid),
    authentication_flow TEXT REFERENCES flows(uuid),
    client_id TEXT NOT NULL UNIQUE,
    client_secret TEXT NOT NULL DEFAULT '',
    access_token_validity TEXT NOT NULL,
    refresh_token_validity TEXT NOT NULL,
    last_updated TEXT NOT NULL
);

CREATE TABLE oauth2_providers (
    provider_id INTEGER PRIMARY KEY REFERENCES providers(id) ON DELETE CASCADE,
    client_type TEXT NOT NULL DEFAULT 'confidential',
    access_code_validity TEXT NOT NULL DEFAULT 'minutes=1',
    include_claims_in_id_token INTEGER NOT NULL DEFAULT TRUE,
    sub_mode TEXT NOT NULL DEFAULT 'hashed_user_id',
    issuer_mode TEXT NOT NULL DEFAULT 'per_provider',
    logout_uri TEXT NOT NULL DEFAULT ''
);

CREATE TABLE oauth2_redirect_uris (
    provider_id INTEGER NOT NULL REFERENCES oauth2_providers(provider_id) ON DELETE CASCADE,
    position INTEGER NOT NULL,
    matching_mode TEXT NOT NULL,
    url TEXT NOT NULL,
    PRIMARY KEY (provider_id, position)
);

CREATE TABLE proxy_providers (
    provider_id INTEGER PRIMARY KEY REFERENCES providers(id) ON DELETE CASCADE,
    mode TEXT NOT NULL DEFAULT 'forward_single',
    external_host TEXT NOT NULL,
    internal_host TEXT NOT NULL DEFAULT '',
    internal_host_ssl_validation INTEGER NOT NULL DEFAULT TRUE,
    cookie_domain TEXT NOT NULL DEFAULT '',
    skip_path_regex TEXT NOT NULL DEFAULT '',
    basic_auth_enabled INTEGER NOT NULL DEFAULT FALSE,
    basic_auth_user_attribute TEXT NOT NULL DEFAULT '',
    basic_auth_password_attribute TEXT NOT NULL DEFAULT '',
    intercept_header_auth INTEGER NOT NULL DEFAULT TRUE
);

CREATE TABLE applications (
    uuid TEXT PRIMARY KEY,
    slug TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    provider_id INTEGER UNIQUE REFERENCES providers(id) ON DELETE SET NULL,
    meta_launch_url TEXT NOT NULL DEFAULT '',
    meta_icon TEXT NOT NULL DEFAULT '',
    meta_description TEXT NOT NULL DEFAULT '',
    meta_publisher TEXT NOT NULL DEFAULT '',
    open_in_new_tab INTEGER NOT NULL DEFAULT FALSE,
    meta_hide INTEGER NOT NULL DEFAULT FALSE,
    policy_engine_mode TEXT NOT NULL DEFAULT 'any',
    group_name TEXT NOT NULL DEFAULT ''
);

-- A binding targets exactly one flow, application or stage binding, and binds exactly one
-- policy, group or user to it.
CREATE TABLE policy_bindings (
    uuid TEXT PRIMARY KEY,
    target_flow TEXT REFERENCES flows(uuid) ON DELETE CASCADE,
    target_application TEXT REFERENCES applications(uuid) ON DELETE CASCADE,
    target_stage_binding TEXT REFERENCES flow_stage_bindings(uuid) ON DELETE CASCADE,
    policy_uuid TEXT REFERENCES policies(uuid) ON DELETE CASCADE,
    group_id INTEGER REFERENCES groups(id) ON DELETE CASCADE,
    user_id INTEGER REFERENCES users(id) ON DELETE CASCADE,
    negate INTEGER NOT NULL DEFAULT FALSE,
    enabled INTEGER NOT NULL DEFAULT TRUE,
    position INTEGER NOT NULL DEFAULT 0,
    timeout INTEGER NOT NULL DEFAULT 30,
    failure_result INTEGER NOT NULL DEFAULT FALSE,
    CHECK ((target_flow IS NOT NULL) + (target_application IS NOT NULL) + (target_stage_binding IS NOT NULL) = 1),
    CHECK ((policy_uuid IS NOT NULL) + (group_id IS NOT NULL) + (user_id IS NOT NULL) = 1)
);

CREATE TABLE sources (
    uuid TEXT PRIMARY KEY,
    slug TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    enabled INTEGER NOT NULL DEFAULT TRUE,
    promoted INTEGER NOT NULL DEFAULT FALSE,
    provider_type TEXT NOT NULL,
    user_matching_mode TEXT NOT NULL DEFAULT 'identifier',
    authentication_flow TEXT REFERENCES flows(uuid) ON DELETE SET NULL,
    enrollment_flow TEXT REFERENCES flows(uuid) ON DELETE SET NULL,
    consumer_key TEXT NOT NULL,
    consumer_secret TEXT NOT NULL DEFAULT '',
    authorization_url TEXT NOT NULL DEFAULT '',
    access_token_url TEXT NOT NULL DEFAULT '',
    profile_url TEXT NOT NULL DEFAULT '',
    oidc_well_known_url TEXT NOT NULL DEFAULT '',
    additional_scopes TEXT NOT NULL DEFAULT ''
);

-- Links between a local user and an identity at a login source.
CREATE TABLE source_connections (
    source_uuid TEXT NOT NULL REFERENCES sources(uuid) ON DELETE CASCADE,
    user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    identifier TEXT NOT NULL,
    created TEXT NOT NULL,
    PRIMARY KEY (source_uuid, identifier)
);

CREATE TABLE invitations (
    uuid TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    flow_uuid TEXT NOT NULL REFERENCES flows(uuid) ON DELETE CASCADE,
    expires TEXT,
    fixed_data TEXT NOT NULL DEFAULT '{}',
    single_use INTEGER NOT NULL DEFAULT TRUE,
    created_by INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    created TEXT NOT NULL
);

CREATE TABLE tokens (
    uuid TEXT PRIMARY KEY,
    identifier TEXT NOT NULL UNIQUE,
    key_hash TEXT NOT NULL UNIQUE,
    intent TEXT NOT NULL,
    user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    description TEXT NOT NULL DEFAULT '',
    expiring INTEGER NOT NULL DEFAULT TRUE,
    expires TEXT,
    managed TEXT,
    created TEXT NOT NULL
);

CREATE TABLE sessions (
    uuid TEXT PRIMARY KEY,
    key_hash TEXT NOT NULL UNIQUE,
    user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    created TEXT NOT NULL,
    expires TEXT NOT NULL,
    last_ip TEXT NOT NULL DEFAULT '',
    user_agent TEXT NOT NULL DEFAULT ''
);
CREATE INDEX sessions_user ON sessions(user_id);
CREATE INDEX sessions_expires ON sessions(expires);

-- Proxy (outpost) sessions, one per provider, linked to the IdP session that produced them so
-- that logout at the IdP ends them all.
CREATE TABLE proxy_sessions (
    uuid TEXT PRIMARY KEY,
    key_hash TEXT NOT NULL UNIQUE,
    provider_id INTEGER NOT NULL REFERENCES providers(id) ON DELETE CASCADE,
    user_id INTEGER REFERENCES users(id) ON DELETE CASCADE,
    idp_session TEXT REFERENCES sessions(uuid) ON DELETE CASCADE,
    session_data TEXT NOT NULL DEFAULT '{}',
    created TEXT NOT NULL,
    expires TEXT NOT NULL
);
CREATE INDEX proxy_sessions_user ON proxy_sessions(user_id);
CREATE INDEX proxy_sessions_expires ON proxy_sessions(expires);

CREATE TABLE totp_devices (
    uuid TEXT PRIMARY KEY,
    user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    secret TEXT NOT NULL,
    confirmed INTEGER NOT NULL DEFAULT FALSE,
    created TEXT NOT NULL
);

CREATE TABLE webauthn_devices (
    uuid TEXT PRIMARY KEY,
    user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    credential_id TEXT NOT NULL UNIQUE,
    credential TEXT NOT NULL,
    created TEXT NOT NULL,
    last_used TEXT
);

-- Failed-login scores per (identifier, ip); decays with time (SPEC L2).
CREATE TABLE reputation_scores (
    identifier TEXT NOT NULL,
    ip TEXT NOT NULL,
    score INTEGER NOT NULL DEFAULT 0,
    updated TEXT NOT NULL,
    PRIMARY KEY (identifier, ip)
);

CREATE TABLE outposts (
    uuid TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    outpost_type TEXT NOT NULL DEFAULT 'proxy',
    config TEXT NOT NULL DEFAULT '{}',
    managed TEXT UNIQUE,
    token_uuid TEXT REFERENCES tokens(uuid) ON DELETE SET NULL
);

CREATE TABLE outpost_providers (
    outpost_uuid TEXT NOT NULL REFERENCES outposts(uuid) ON DELETE CASCADE,
    provider_id INTEGER NOT NULL REFERENCES providers(id) ON DELETE CASCADE,
    PRIMARY KEY (outpost_uuid, provider_id)
);

-- Audit log: logins, failures, admin changes.
CREATE TABLE events (
    uuid TEXT PRIMARY KEY,
    action TEXT NOT NULL,
    app TEXT NOT NULL,
    user_info TEXT NOT NULL DEFAULT '{}',
    context TEXT NOT NULL DEFAULT '{}',
    client_ip TEXT,
    created TEXT NOT NULL,
    expires TEXT
);
CREATE INDEX events_created ON events(created);

-- Change feed: every write that matters to a running process appends a row in the same
-- transaction; processes follow it to reload config and evict revoked sessions.
CREATE TABLE changes (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL,
    object_id TEXT NOT NULL,
    created TEXT NOT NULL
);
