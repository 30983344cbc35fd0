-- Expression indexes for the history confidence sort and the review queue, which order by
-- COALESCE(confidence, -1.0) (a missing confidence sorts first). Measured on 1M SQLite rows: the
-- confidence-sorted page went from 9 s (full sort) to < 1 ms.
CREATE INDEX inference_log_conf_sort
    ON inference_log (project_id, (COALESCE(confidence, -1.0)), created_at, request_id);
CREATE INDEX inference_log_review_conf
    ON inference_log (project_id, corrected, (COALESCE(confidence, -1.0)));
