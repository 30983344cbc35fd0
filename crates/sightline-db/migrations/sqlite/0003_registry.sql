-- Model registry (SQLite): the columns a registered model version carries beyond 0001, its
-- evaluations, MLflow-style aliases, and the audit trail of alias changes (promotions).

ALTER TABLE model_versions ADD COLUMN model_name TEXT NOT NULL DEFAULT '';
ALTER TABLE model_versions ADD COLUMN checkpoint_path TEXT NOT NULL DEFAULT '';
ALTER TABLE model_versions ADD COLUMN bundle_dir TEXT NOT NULL DEFAULT '';     -- relative to the artifact root
ALTER TABLE model_versions ADD COLUMN preprocessing TEXT NOT NULL DEFAULT '{}'; -- JSON
ALTER TABLE model_versions ADD COLUMN thresholds TEXT NOT NULL DEFAULT '{}';    -- JSON
ALTER TABLE model_versions ADD COLUMN business_rules TEXT NOT NULL DEFAULT '{}'; -- JSON
ALTER TABLE model_versions ADD COLUMN experiment_id TEXT;
ALTER TABLE model_versions ADD COLUMN evaluation_report TEXT;
ALTER TABLE model_versions ADD COLUMN note TEXT;
CREATE INDEX model_versions_experiment ON model_versions (experiment_id);
CREATE INDEX model_versions_dataset ON model_versions (dataset_version_id);

CREATE TABLE model_evaluations (
    id                 INTEGER PRIMARY KEY AUTOINCREMENT,
    model_version_id   INTEGER REFERENCES model_versions (id) ON DELETE RESTRICT,
    experiment_id      TEXT,
    dataset_version_id TEXT,
    split              TEXT,
    summary            TEXT    NOT NULL DEFAULT '{}', -- JSON: gate-relevant numbers
    details            TEXT    NOT NULL DEFAULT '{}', -- JSON: the payload as received
    report_path        TEXT,
    created_at         TEXT    NOT NULL,
    CHECK (model_version_id IS NOT NULL OR experiment_id IS NOT NULL)
);
CREATE INDEX model_evaluations_model ON model_evaluations (model_version_id, created_at);
CREATE INDEX model_evaluations_experiment ON model_evaluations (experiment_id, created_at);

CREATE TABLE model_aliases (
    project_id       INTEGER NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    task             TEXT    NOT NULL CHECK (task IN ('segment', 'classify')),
    alias            TEXT    NOT NULL,
    model_version_id INTEGER NOT NULL REFERENCES model_versions (id) ON DELETE RESTRICT,
    updated_at       TEXT    NOT NULL,
    PRIMARY KEY (project_id, task, alias)
);

CREATE TABLE model_alias_events (
    id                    INTEGER PRIMARY KEY AUTOINCREMENT,
    project_id            INTEGER NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    task                  TEXT    NOT NULL,
    alias                 TEXT    NOT NULL,
    from_model_version_id INTEGER REFERENCES model_versions (id) ON DELETE RESTRICT,
    to_model_version_id   INTEGER NOT NULL REFERENCES model_versions (id) ON DELETE RESTRICT,
    forced                BOOLEAN NOT NULL DEFAULT 0,
    overridden            TEXT    NOT NULL DEFAULT '[]', -- JSON: gate failures --force overrode
    actor                 TEXT    NOT NULL,
    at                    TEXT    NOT NULL
);
CREATE INDEX model_alias_events_alias ON model_alias_events (project_id, task, alias, at);
