"""wattserve.render."""
