-- no-transaction
-- Dataset version ids are content hashes, so the same data ingested into two projects has the
-- same id: key versions by (project, id) instead of id alone (SQLite).
--
-- SQLite cannot change a primary key in place: dataset_versions is rebuilt (the documented
-- 12-step procedure, foreign keys off for its duration, one transaction). The single-column
-- references to dataset_versions (id) in model_versions (0001), experiments (0005) and
-- corrections (0006) become composite (project_id, dataset_version_id) references by editing
-- their stored definitions, SQLite's documented procedure for constraint-only changes that leave
-- the stored rows as they are; `writable_schema = RESET` reloads the schema. corrections loses
-- 0006's ON DELETE SET NULL (SQLite would null project_id too; versions are immutable and never
-- deleted anyway). A final guard fails the migration if any table still references
-- dataset_versions (id) alone.
PRAGMA foreign_keys = OFF;
BEGIN;

CREATE TABLE dataset_versions_0007 (
    id         TEXT    NOT NULL,
    project_id INTEGER NOT NULL REFERENCES projects (id) ON DELETE RESTRICT,
    parent_id  TEXT,
    message    TEXT    NOT NULL DEFAULT '',
    author     TEXT    NOT NULL DEFAULT '',
    created_at TEXT    NOT NULL,
    stats      TEXT    NOT NULL DEFAULT '{}',       -- JSON
    source     TEXT    NOT NULL DEFAULT '',
    format     TEXT,
    nfiles     INTEGER NOT NULL DEFAULT 0,
    size_bytes INTEGER NOT NULL DEFAULT 0,
    images     INTEGER NOT NULL DEFAULT 0,
    instances  INTEGER NOT NULL DEFAULT 0,
    notes      TEXT    NOT NULL DEFAULT '[]',       -- JSON list
    PRIMARY KEY (project_id, id),
    FOREIGN KEY (project_id, parent_id) REFERENCES dataset_versions (project_id, id) ON DELETE RESTRICT
);
INSERT INTO dataset_versions_0007 (id, project_id, parent_id, message, author, created_at, stats,
                                   source, format, nfiles, size_bytes, images, instances, notes)
    SELECT id, project_id, parent_id, message, author, created_at, stats,
           source, format, nfiles, size_bytes, images, instances, notes
    FROM dataset_versions;
DROP TABLE dataset_versions;
ALTER TABLE dataset_versions_0007 RENAME TO dataset_versions;
CREATE INDEX dataset_versions_project ON dataset_versions (project_id, created_at);
CREATE INDEX dataset_versions_parent ON dataset_versions (project_id, parent_id);

PRAGMA writable_schema = ON;
UPDATE sqlite_schema
   SET sql = substr(replace(sql, 'REFERENCES dataset_versions (id) ON DELETE RESTRICT', ''), 1,
                    length(rtrim(replace(sql, 'REFERENCES dataset_versions (id) ON DELETE RESTRICT', ''))) - 1)
             || ',' || char(10)
             || '    FOREIGN KEY (project_id, dataset_version_id) REFERENCES dataset_versions (project_id, id) ON DELETE RESTRICT'
             || char(10) || ')'
 WHERE type = 'table' AND name IN ('model_versions', 'experiments')
   AND instr(sql, 'REFERENCES dataset_versions (id) ON DELETE RESTRICT') > 0;
UPDATE sqlite_schema
   SET sql = substr(replace(sql, 'REFERENCES dataset_versions (id) ON DELETE SET NULL', ''), 1,
                    length(rtrim(replace(sql, 'REFERENCES dataset_versions (id) ON DELETE SET NULL', ''))) - 1)
             || ',' || char(10)
             || '    FOREIGN KEY (project_id, dataset_version_id) REFERENCES dataset_versions (project_id, id)'
             || char(10) || ')'
 WHERE type = 'table' AND name = 'corrections'
   AND instr(sql, 'REFERENCES dataset_versions (id) ON DELETE SET NULL') > 0;
PRAGMA writable_schema = RESET;

-- Guard: no table may still reference dataset_versions (id) alone.
CREATE TEMP TABLE migration_0007_guard (leftover INTEGER NOT NULL CHECK (leftover = 0));
INSERT INTO migration_0007_guard
    SELECT count(*) FROM sqlite_schema
     WHERE type = 'table' AND replace(replace(sql, char(10), ' '), '  ', ' ') LIKE '%REFERENCES dataset_versions (id)%';
DROP TABLE migration_0007_guard;

COMMIT;
PRAGMA foreign_keys = ON;
