"""pq package."""
