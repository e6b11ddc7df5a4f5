"""action-prune: a registry retention policy that never deletes what a kept image needs."""
