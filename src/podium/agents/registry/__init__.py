"""The agent registry: resolving slugs to agents, admission checks, files read at start."""
