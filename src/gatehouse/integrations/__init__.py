"""Adapters that let other apps use Gatehouse as their user provider (``asgi``)."""
