//! HTTP API and live inference service (axum): inspect, hot deployment, dynamic batching, request logging, history, metrics.
