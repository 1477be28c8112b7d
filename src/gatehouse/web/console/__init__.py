"""Server-rendered console pages (Jinja2, no JavaScript framework)."""
