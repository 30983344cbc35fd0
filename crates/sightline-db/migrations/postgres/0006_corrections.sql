-- Operator corrections of logged inspections (PostgreSQL), and the denormalized flags history and
-- the review queue filter on (`corrected`, `disagreement`), indexed for tables of millions of rows.

CREATE TABLE corrections (
    id                 BIGSERIAL   PRIMARY KEY,
    request_id         TEXT        NOT NULL REFERENCES inference_log (request_id) ON DELETE CASCADE,
    project_id         BIGINT      NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    action             TEXT        NOT NULL CHECK (action IN ('accept', 'relabel', 'reject')),
    image_label        TEXT,
    instances          JSONB,       -- list of {label, polygons?, box_xyxy?}; NULL: not given
    note               TEXT,
    author             TEXT        NOT NULL,
    created_at         TIMESTAMPTZ NOT NULL,
    dataset_version_id TEXT        REFERENCES dataset_versions (id) ON DELETE SET NULL
);
CREATE INDEX corrections_request ON corrections (request_id, id);
CREATE INDEX corrections_unused ON corrections (project_id, dataset_version_id, id);

-- Set when a correction is recorded; computed from the response when the row is logged.
ALTER TABLE inference_log ADD COLUMN corrected BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE inference_log ADD COLUMN disagreement BOOLEAN NOT NULL DEFAULT FALSE;
CREATE INDEX inference_log_created ON inference_log (created_at, request_id);
CREATE INDEX inference_log_corrected ON inference_log (project_id, corrected, created_at);
CREATE INDEX inference_log_confidence ON inference_log (project_id, confidence, created_at);
CREATE INDEX inference_log_review ON inference_log (project_id, corrected, verdict, confidence);
CREATE INDEX inference_log_disagreement ON inference_log (project_id, corrected, disagreement, confidence);
CREATE INDEX inference_log_camera ON inference_log (project_id, camera, created_at);
CREATE INDEX inference_log_detector ON inference_log (detector_version_id, created_at);
CREATE INDEX inference_log_classifier ON inference_log (classifier_version_id, created_at);
