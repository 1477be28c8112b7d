"""The console <-> environment sync protocol (version ``gatehouse.PROTOCOL_VERSION``).

Environment servers pull; the console never calls them. All calls carry the environment
credential as ``Authorization: Bearer ghe_...`` (only its SHA-256 is stored on the console)::

    POST /api/v1/sync/join       {"join_token"} -> {"credential", "environment": {id, name, ...}}
    GET  /api/v1/sync/changes?since=REV[&cursor=ID][&idp=FINGERPRINT]
                                 -> 304 (nothing new) | 200 {"revision", "full", "more", "cursor",
                                    "users": [...], "deleted_users": [...], "environment",
                                    "idp_fingerprint", "idp": {...} | null}
    POST /api/v1/sync/heartbeat  {"gatehouse_version", "protocol_version", "versions", "health"}
    GET  /api/v1/sync/status     (environment server) how stale its copy is

Modules: ``feed`` (console: build pages), ``replica`` (environment: apply pages), ``puller``
(environment: the loop). The HTTP side sits with the other routes: ``web/api/sync.py`` (these
endpoints) and ``web/readonly.py`` (environment: refuse writes to what the console owns); this
package never imports :mod:`gatehouse.web` (docs/architecture.md).
"""
