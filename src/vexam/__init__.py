"""vexam: an open platform for remote video admission exams."""

__version__ = "0.1.0"
