//! Metadata database: SQLite (embedded default) or PostgreSQL, versioned migrations, repositories for projects, labels and the records later layers add.
