-- Scope mappings: custom claims as CEL expressions, added to tokens and userinfo when their
-- scope is granted, for the providers that select them (Authentik's property_mappings).

CREATE TABLE scope_mappings (
    uuid TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    scope_name TEXT NOT NULL,
    expression TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    created TEXT NOT NULL
);

CREATE TABLE provider_scope_mappings (
    provider_id INTEGER NOT NULL REFERENCES providers(id) ON DELETE CASCADE,
    mapping_uuid TEXT NOT NULL REFERENCES scope_mappings(uuid) ON DELETE CASCADE,
    PRIMARY KEY (provider_id, mapping_uuid)
);
