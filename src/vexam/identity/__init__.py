"""Identity certification: ID numbers, OCR, faces, liveness, conflicts, manual review (SPEC §3)."""
