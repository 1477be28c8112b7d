"""The HTTP surface: the console (server-rendered pages) and the JSON API under /api/v1."""
