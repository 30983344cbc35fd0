-- Inference request log (PostgreSQL): one row per inspect request with its response; images are
-- stored once by content hash in the artifact store (`image_path`, relative to its root).

CREATE TABLE inference_log (
    request_id            TEXT             PRIMARY KEY,
    project_id            BIGINT           NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    created_at            TIMESTAMPTZ      NOT NULL,
    verdict               TEXT             NOT NULL CHECK (verdict IN ('ok', 'ng', 'unknown')),
    detector_version_id   BIGINT           REFERENCES model_versions (id) ON DELETE RESTRICT,
    classifier_version_id BIGINT           REFERENCES model_versions (id) ON DELETE RESTRICT,
    label                 TEXT,
    confidence            DOUBLE PRECISION,
    line                  TEXT,
    lot                   TEXT,
    camera                TEXT,
    part_id               TEXT,
    image_sha256          TEXT             NOT NULL,
    image_path            TEXT,
    width                 BIGINT           NOT NULL,
    height                BIGINT           NOT NULL,
    latency_ms            DOUBLE PRECISION NOT NULL,
    response              JSONB            NOT NULL
);
CREATE INDEX inference_log_time ON inference_log (project_id, created_at);
CREATE INDEX inference_log_verdict ON inference_log (project_id, verdict, created_at);
CREATE INDEX inference_log_lot ON inference_log (project_id, lot, created_at);
CREATE INDEX inference_log_line ON inference_log (project_id, line, camera, created_at);
CREATE INDEX inference_log_label ON inference_log (project_id, label, created_at);
CREATE INDEX inference_log_image ON inference_log (image_sha256);
