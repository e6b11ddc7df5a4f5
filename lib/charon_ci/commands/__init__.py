"""One module per charon-ci command: each parses its inputs once and calls the cores."""
