"""Integrations with the rest of the stack; each depends on the core, never the reverse."""
