//! Domain types shared by every Sightline crate: project manifests (schema, validation with file/line/column), labels, tasks and layered settings.
