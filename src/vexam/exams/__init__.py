"""Exams: settings and subjects (SPEC §4); applications, payments and sessions build on them."""
