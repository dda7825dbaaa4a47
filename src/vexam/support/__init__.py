"""Support: service-hours calendar (SPEC §7); tickets, help centre and self-check come later."""
