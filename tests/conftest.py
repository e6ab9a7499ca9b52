"""Shared pytest configuration: services started by `make test` announce themselves via env vars."""
