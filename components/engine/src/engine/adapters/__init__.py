"""Adapters to the outside world: PocketBase over its REST API, Redis."""
