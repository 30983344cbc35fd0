//! Cross-process alias-change notification (PostgreSQL LISTEN/NOTIFY; polling elsewhere).
