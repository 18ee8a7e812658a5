"""wattserve serving: the OpenAI-compatible data path (separate from the operator)."""
