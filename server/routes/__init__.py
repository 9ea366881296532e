"""Routers, one per resource; handlers parse, call the service, map the result."""
