"""charon-ci: build once, test many. Actions for immutable image tags, pull-or-fallback, safe pruning, metrics."""

__version__ = "0.1.0"
