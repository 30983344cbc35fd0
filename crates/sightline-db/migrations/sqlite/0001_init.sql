-- Sightline metadata, version 1 (SQLite): projects, their ordered label sets, and the minimal
-- dataset/model version records that the label-change guard counts. Later migrations
-- (0002_datasets.sql, ...) extend these tables; never edit an applied migration.

CREATE TABLE projects (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    name          TEXT    NOT NULL UNIQUE,
    manifest_yaml TEXT    NOT NULL,                 -- the manifest as the user wrote it
    manifest_json TEXT    NOT NULL,                 -- the validated manifest, defaults resolved
    created_at    TEXT    NOT NULL,                 -- RFC 3339, UTC
    updated_at    TEXT    NOT NULL
);

-- A label's position is its class id: rows are appended, never renumbered silently.
CREATE TABLE labels (
    project_id INTEGER NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    position   INTEGER NOT NULL CHECK (position >= 0),
    name       TEXT    NOT NULL,
    created_at TEXT    NOT NULL,
    PRIMARY KEY (project_id, position),
    UNIQUE (project_id, name)
);

-- An immutable dataset version, identified by its content hash.
CREATE TABLE dataset_versions (
    id         TEXT    PRIMARY KEY,
    project_id INTEGER NOT NULL REFERENCES projects (id) ON DELETE RESTRICT,
    parent_id  TEXT    REFERENCES dataset_versions (id) ON DELETE RESTRICT,
    message    TEXT    NOT NULL DEFAULT '',
    author     TEXT    NOT NULL DEFAULT '',
    created_at TEXT    NOT NULL,
    stats      TEXT    NOT NULL DEFAULT '{}'        -- JSON
);
CREATE INDEX dataset_versions_project ON dataset_versions (project_id, created_at);

-- An immutable registered model version: (project, task, version) is unique.
CREATE TABLE model_versions (
    id                 INTEGER PRIMARY KEY AUTOINCREMENT,
    project_id         INTEGER NOT NULL REFERENCES projects (id) ON DELETE RESTRICT,
    task               TEXT    NOT NULL CHECK (task IN ('segment', 'classify')),
    version            INTEGER NOT NULL CHECK (version >= 1),
    checkpoint_sha256  TEXT    NOT NULL,
    dataset_version_id TEXT    REFERENCES dataset_versions (id) ON DELETE RESTRICT,
    labels             TEXT    NOT NULL DEFAULT '[]', -- JSON: the label names by class id
    metadata           TEXT    NOT NULL DEFAULT '{}', -- JSON
    created_at         TEXT    NOT NULL,
    UNIQUE (project_id, task, version)
);
