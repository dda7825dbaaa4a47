"""Schools and their staff; rosters and exams come with SPEC §4."""
