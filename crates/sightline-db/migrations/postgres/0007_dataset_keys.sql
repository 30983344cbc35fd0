-- Dataset version ids are content hashes, so the same data ingested into two projects has the
-- same id: key versions by (project, id) instead of id alone (PostgreSQL).
--
-- The single-column references to dataset_versions (id) (parent_id and model_versions from
-- 0001, experiments from 0005, corrections from 0006) become composite (project_id, …) references. Dropping the
-- old primary key fails loudly if any other table still depends on it. The references from
-- other tables are added NOT VALID: new and changed rows are checked, rows from before this
-- migration are kept as they are (a cross-project link recorded earlier stays readable).
ALTER TABLE model_versions DROP CONSTRAINT model_versions_dataset_version_id_fkey;
ALTER TABLE IF EXISTS experiments DROP CONSTRAINT IF EXISTS experiments_dataset_version_id_fkey;
ALTER TABLE IF EXISTS corrections DROP CONSTRAINT IF EXISTS corrections_dataset_version_id_fkey;
ALTER TABLE dataset_versions DROP CONSTRAINT dataset_versions_parent_id_fkey;
ALTER TABLE dataset_versions DROP CONSTRAINT dataset_versions_pkey;

ALTER TABLE dataset_versions ADD CONSTRAINT dataset_versions_pkey PRIMARY KEY (project_id, id);
ALTER TABLE dataset_versions ADD CONSTRAINT dataset_versions_parent_fkey
    FOREIGN KEY (project_id, parent_id) REFERENCES dataset_versions (project_id, id) ON DELETE RESTRICT;
DROP INDEX dataset_versions_parent;
CREATE INDEX dataset_versions_parent ON dataset_versions (project_id, parent_id);

ALTER TABLE model_versions ADD CONSTRAINT model_versions_dataset_version_fkey
    FOREIGN KEY (project_id, dataset_version_id) REFERENCES dataset_versions (project_id, id)
    ON DELETE RESTRICT NOT VALID;
ALTER TABLE IF EXISTS experiments ADD CONSTRAINT experiments_dataset_version_fkey
    FOREIGN KEY (project_id, dataset_version_id) REFERENCES dataset_versions (project_id, id)
    ON DELETE RESTRICT NOT VALID;
ALTER TABLE IF EXISTS corrections ADD CONSTRAINT corrections_dataset_version_fkey
    FOREIGN KEY (project_id, dataset_version_id) REFERENCES dataset_versions (project_id, id)
    ON DELETE SET NULL (dataset_version_id) NOT VALID;
