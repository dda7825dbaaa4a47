"""Static assets and shared templates (base layout, error page)."""
