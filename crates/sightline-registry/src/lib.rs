//! Model registry: immutable model versions, MLflow-style aliases with promotion gates, checksummed deployment bundles, lineage.
