"""Shared machinery. Imports no domain package."""
