-- Training experiments (PostgreSQL): one row per `sightline train` run (its folder is
-- `<artifacts>/experiments/<id>/`), and one row per completed epoch with its losses and
-- validation metrics. A resumed run keeps its row; its status goes back to `running`.

CREATE TABLE experiments (
    id                 TEXT             PRIMARY KEY,
    project_id         BIGINT           NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    task               TEXT             NOT NULL CHECK (task IN ('segment', 'classify')),
    dataset_version_id TEXT             NOT NULL REFERENCES dataset_versions (id) ON DELETE RESTRICT,
    config             JSONB            NOT NULL DEFAULT '{}',
    dir                TEXT             NOT NULL,
    status             TEXT             NOT NULL CHECK (status IN ('running', 'completed', 'stopped', 'failed')),
    started_at         TIMESTAMPTZ      NOT NULL,
    finished_at        TIMESTAMPTZ,
    epochs_completed   BIGINT           NOT NULL DEFAULT 0,
    best_epoch         BIGINT,
    best_fitness       DOUBLE PRECISION,
    best_metrics       JSONB            NOT NULL DEFAULT '{}',
    error              TEXT
);
CREATE INDEX experiments_project ON experiments (project_id, started_at);

CREATE TABLE experiment_epochs (
    experiment_id TEXT             NOT NULL REFERENCES experiments (id) ON DELETE CASCADE,
    epoch         BIGINT           NOT NULL CHECK (epoch >= 0),
    losses        JSONB            NOT NULL DEFAULT '{}',
    lr            DOUBLE PRECISION NOT NULL,
    metrics       JSONB            NOT NULL DEFAULT '{}',
    fitness       DOUBLE PRECISION NOT NULL,
    time_s        DOUBLE PRECISION NOT NULL,
    created_at    TIMESTAMPTZ      NOT NULL,
    PRIMARY KEY (experiment_id, epoch)
);
