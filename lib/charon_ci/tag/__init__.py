"""action-tag: immutable image tags and OCI labels for a build event."""
