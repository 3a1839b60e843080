"""cosem package."""
