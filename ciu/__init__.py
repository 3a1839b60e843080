"""ciu package."""
