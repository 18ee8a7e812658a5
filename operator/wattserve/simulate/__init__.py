"""wattserve.simulate."""
