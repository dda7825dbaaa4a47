"""Media benchmark: face audit time of a recording against its duration (SPEC §6)."""
