"""Command-line entry points (`wattserve ...`)."""
