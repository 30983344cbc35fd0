-- Training experiments (SQLite): one row per `sightline train` run (its folder is
-- `<artifacts>/experiments/<id>/`), and one row per completed epoch with its losses and
-- validation metrics. A resumed run keeps its row; its status goes back to `running`.

CREATE TABLE experiments (
    id                 TEXT    PRIMARY KEY,         -- the folder name, e.g. 20261129-001500
    project_id         INTEGER NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    task               TEXT    NOT NULL CHECK (task IN ('segment', 'classify')),
    dataset_version_id TEXT    NOT NULL REFERENCES dataset_versions (id) ON DELETE RESTRICT,
    config             TEXT    NOT NULL DEFAULT '{}', -- JSON: the resolved training configuration
    dir                TEXT    NOT NULL,             -- the experiment folder (local path or store key)
    status             TEXT    NOT NULL CHECK (status IN ('running', 'completed', 'stopped', 'failed')),
    started_at         TEXT    NOT NULL,             -- RFC 3339, UTC
    finished_at        TEXT,
    epochs_completed   INTEGER NOT NULL DEFAULT 0,
    best_epoch         INTEGER,
    best_fitness       REAL,
    best_metrics       TEXT    NOT NULL DEFAULT '{}', -- JSON: validation metrics of the best epoch
    error              TEXT                          -- why a failed run failed
);
CREATE INDEX experiments_project ON experiments (project_id, started_at);

CREATE TABLE experiment_epochs (
    experiment_id TEXT    NOT NULL REFERENCES experiments (id) ON DELETE CASCADE,
    epoch         INTEGER NOT NULL CHECK (epoch >= 0),
    losses        TEXT    NOT NULL DEFAULT '{}',    -- JSON: mean training loss by name
    lr            REAL    NOT NULL,
    metrics       TEXT    NOT NULL DEFAULT '{}',    -- JSON: validation metrics by name
    fitness       REAL    NOT NULL,
    time_s        REAL    NOT NULL,
    created_at    TEXT    NOT NULL,
    PRIMARY KEY (experiment_id, epoch)
);
