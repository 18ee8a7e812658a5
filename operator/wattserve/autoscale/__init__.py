"""wattserve.autoscale."""
