"""action-metrics: measure the pipeline (build time, failures, builds per commit, pulls, cleanups, storage)."""
