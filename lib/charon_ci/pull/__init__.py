"""action-pull-image: the image the build made, from the registry or its artifact, proven by its revision."""
