"""wattserve.devcluster."""
