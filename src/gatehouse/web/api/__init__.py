"""JSON API under /api/v1. Routes read input, call a domain service, shape output."""
