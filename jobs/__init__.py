"""Jobs: thin wrappers that parse config, read tables, apply pure transforms and write tables."""
