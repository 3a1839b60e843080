"""sts package."""
