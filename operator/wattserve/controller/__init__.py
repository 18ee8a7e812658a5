"""wattserve.controller."""
