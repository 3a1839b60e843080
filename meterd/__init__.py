"""meterd package."""
