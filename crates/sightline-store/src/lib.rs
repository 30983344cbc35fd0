//! Artifact store: local folder or S3-compatible object storage, atomic writes and content hashes, laid out as the seed's artifacts/ tree.
