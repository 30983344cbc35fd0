-- Dataset versions (PostgreSQL): what a content-addressed version carries beyond 0001. The id
-- is the md5 of the version's DVC `.dir` object; the objects live in the project's data area.
ALTER TABLE dataset_versions ADD COLUMN source TEXT NOT NULL DEFAULT '';
ALTER TABLE dataset_versions ADD COLUMN format TEXT;
ALTER TABLE dataset_versions ADD COLUMN nfiles BIGINT NOT NULL DEFAULT 0;
ALTER TABLE dataset_versions ADD COLUMN size_bytes BIGINT NOT NULL DEFAULT 0;
ALTER TABLE dataset_versions ADD COLUMN images BIGINT NOT NULL DEFAULT 0;
ALTER TABLE dataset_versions ADD COLUMN instances BIGINT NOT NULL DEFAULT 0;
ALTER TABLE dataset_versions ADD COLUMN notes JSONB NOT NULL DEFAULT '[]';
CREATE INDEX dataset_versions_parent ON dataset_versions (parent_id);
