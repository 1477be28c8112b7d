"""Domain logic: users, roles, passwords and their policy, sessions, audit, the IdP state.

Pure logic over a SQLAlchemy session; nothing here knows about HTTP.
"""
