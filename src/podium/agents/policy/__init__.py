"""Routing policy: rules, input patterns and rate limits checked before an agent call."""
