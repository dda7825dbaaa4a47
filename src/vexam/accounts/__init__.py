"""Accounts: phone numbers, SMS codes, passwords, sessions and devices (SPEC §2)."""
