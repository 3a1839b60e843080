"""Composition root of meterd: read config, pick back ends, wire, run."""
