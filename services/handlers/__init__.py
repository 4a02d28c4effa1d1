"""Thin HTTP handlers: parse, call the domain, answer with a schema model."""
