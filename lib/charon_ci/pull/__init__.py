"""action-pull-image: the exact image the build made, from the registry or its artifact, proven by revision."""
