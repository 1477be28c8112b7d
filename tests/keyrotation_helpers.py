"""Secrets at rest for the key-rotation tests (import as ``from keyrotation_helpers import ...``):
a runtime whose key lives in its data directory, one value in every encrypted column, and all
of them read back under a given key. Shared by unit/domain/test_keyrotation.py and
cli/test_keys.py (``gatehouse keys``)."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import select

from gatehouse.domain.crypto import EncryptionContext, SecretBox
from gatehouse.runtime import Runtime
from gatehouse.store.models import SYNC_CREDENTIAL_KEY as CREDENTIAL_KEY
from gatehouse.store.models import IdPConfig, KeyValue, OIDCFlow, Session, User, utcnow
from helpers import make_settings

SECRET_CONTEXT = EncryptionContext.IDP_CLIENT_SECRET
KEY_CONTEXT = EncryptionContext.IDP_PRIVATE_KEY
FLOW_CONTEXT = EncryptionContext.OIDC_FLOW
ID_TOKEN_CONTEXT = EncryptionContext.SESSION_ID_TOKEN
CLAIMS_CONTEXT = EncryptionContext.SESSION_ID_TOKEN_CLAIMS
REFRESH_TOKEN_CONTEXT = EncryptionContext.SESSION_REFRESH_TOKEN
CREDENTIAL_CONTEXT = EncryptionContext.SYNC_CREDENTIAL

SECRETS = {
    "client_secret": "idp-client-secret-value",
    "jwk": '{"kty":"EC","d":"private"}',
    "refresh": "refresh-token-value",
    "id_token": "id.token.value",
    "claims": '{"sub":"alice-sub"}',
    "flow": '{"nonce":"n"}',
    "credential": "environment-credential-value",
}


@contextmanager
def key_file_runtime(tmp_path: Path, database_url: str) -> Iterator[Runtime]:
    """A running server whose key lives in DATA_DIR/secret.key (no GATEHOUSE_SECRET_KEY)."""
    rt = Runtime(make_settings(tmp_path, database_url, secret_key=None))
    rt.start()
    try:
        yield rt
    finally:
        rt.close()


def seed(rt: Runtime, sessions: int = 7) -> None:
    """One value in every encrypted column, under the runtime's current key."""
    box = rt.box
    now = utcnow()
    with rt.db.session() as db:
        user = User(username="alice", username_key="alice")
        db.add(user)
        db.add(
            IdPConfig(
                version=1,
                created_by="test",
                client_secret_enc=box.encrypt_str(SECRETS["client_secret"], context=SECRET_CONTEXT),
                private_key_jwk_enc=box.encrypt_str(SECRETS["jwk"], context=KEY_CONTEXT),
            )
        )
        db.flush()
        for i in range(sessions):
            db.add(
                Session(
                    id_hash=f"{i:064d}",
                    user_id=user.id,
                    method="oidc",
                    expires_at=now + timedelta(hours=1),
                    csrf_secret="c",
                    refresh_token_enc=box.encrypt_str(
                        SECRETS["refresh"], context=REFRESH_TOKEN_CONTEXT
                    ),
                    id_token_enc=box.encrypt_str(SECRETS["id_token"], context=ID_TOKEN_CONTEXT),
                    id_token_claims_enc=box.encrypt_str(SECRETS["claims"], context=CLAIMS_CONTEXT),
                )
            )
        db.add(
            OIDCFlow(
                state_hash="s" * 64,
                browser_hash="b" * 64,
                data_enc=box.encrypt_str(SECRETS["flow"], context=FLOW_CONTEXT + "s" * 64),
                config_version=1,
                expires_at=now + timedelta(minutes=5),
            )
        )
        blob = box.encrypt_str(SECRETS["credential"], context=CREDENTIAL_CONTEXT)
        db.add(
            KeyValue(
                key=CREDENTIAL_KEY,
                value={"console_url": "x", "credential_enc": base64.b64encode(blob).decode()},
            )
        )


def read_all(rt: Runtime, box: SecretBox) -> dict[str, Any]:
    with rt.db.session() as db:
        cfg = db.get(IdPConfig, 1)
        assert cfg is not None and cfg.client_secret_enc and cfg.private_key_jwk_enc
        flow = db.get(OIDCFlow, "s" * 64)
        assert flow is not None
        kv = db.get(KeyValue, CREDENTIAL_KEY)
        assert kv is not None
        rows = list(db.scalars(select(Session)))
        return {
            "client_secret": box.decrypt_str(cfg.client_secret_enc, context=SECRET_CONTEXT),
            "jwk": box.decrypt_str(cfg.private_key_jwk_enc, context=KEY_CONTEXT),
            "refresh": {
                box.decrypt_str(r.refresh_token_enc or b"", context=REFRESH_TOKEN_CONTEXT)
                for r in rows
            },
            "id_token": {
                box.decrypt_str(r.id_token_enc or b"", context=ID_TOKEN_CONTEXT) for r in rows
            },
            "claims": {
                box.decrypt_str(r.id_token_claims_enc or b"", context=CLAIMS_CONTEXT) for r in rows
            },
            "flow": box.decrypt_str(flow.data_enc, context=FLOW_CONTEXT + "s" * 64),
            "credential": box.decrypt_str(
                base64.b64decode(kv.value["credential_enc"]), context=CREDENTIAL_CONTEXT
            ),
        }


EXPECTED = {
    **SECRETS,
    "refresh": {SECRETS["refresh"]},
    "id_token": {SECRETS["id_token"]},
    "claims": {SECRETS["claims"]},
}
