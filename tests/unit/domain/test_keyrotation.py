"""Issue 9 item 3: secrets at rest and ``gatehouse keys rotate`` — every encrypted column is
re-encrypted in batches while a server keeps running, the old key decrypts until the rotation
ends, then it is gone; the signing key is rotated too."""

from __future__ import annotations

import base64
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import LargeBinary, select

from gatehouse.domain import keyrotation
from gatehouse.domain.crypto import DecryptionError, EncryptionContext, SecretBox, key_id_of
from gatehouse.runtime import Runtime
from gatehouse.store.models import Base, IdPConfig, Session
from helpers import make_settings
from keyrotation_helpers import EXPECTED, SECRETS, key_file_runtime, read_all, seed

REFRESH_TOKEN_CONTEXT = EncryptionContext.SESSION_REFRESH_TOKEN


@pytest.fixture
def file_runtime(tmp_path: Path, database_url: str) -> Iterator[Runtime]:
    """A running server whose key lives in DATA_DIR/secret.key (no GATEHOUSE_SECRET_KEY)."""
    with key_file_runtime(tmp_path, database_url) as rt:
        yield rt


def test_key_file_is_created_0600_and_values_at_rest_are_ciphertext(
    file_runtime: Runtime,
) -> None:
    key_file = file_runtime.settings.key_file
    assert key_file.stat().st_mode & 0o777 == 0o600
    seed(file_runtime)
    with file_runtime.db.session() as db:
        cfg = db.get(IdPConfig, 1)
        assert cfg is not None and cfg.client_secret_enc is not None
        assert SECRETS["client_secret"].encode() not in cfg.client_secret_enc
    assert read_all(file_runtime, file_runtime.box) == EXPECTED


def test_every_encrypted_column_is_known_to_the_rotation() -> None:
    binary = {
        f"{table.name}.{column.name}"
        for table in Base.metadata.sorted_tables
        for column in table.columns
        if isinstance(column.type, LargeBinary)
    }
    assert binary == {c.name for c in keyrotation.COLUMNS}


def test_every_encryption_context_is_known_to_the_rotation() -> None:
    """The one table of contexts and the rotation's table of columns name the same labels."""
    used = {c.context("pk") for c in keyrotation.COLUMNS} | {
        keyrotation.CREDENTIAL_CONTEXT.encode()
    }
    labels = {
        (label + "pk" if label is EncryptionContext.OIDC_FLOW else label).encode()
        for label in EncryptionContext
    }
    assert used == labels


def test_rotation_reencrypts_everything_while_a_server_keeps_working(
    file_runtime: Runtime, tmp_path: Path
) -> None:
    seed(file_runtime, sessions=7)
    old_id = file_runtime.box.active_key_id
    token_before, _ = file_runtime.tokens.issue("1")
    settings = file_runtime.settings

    assert keyrotation.begin(settings) is True
    assert keyrotation.in_progress(settings)
    # the CLI's own process (built after begin) re-encrypts, in batches of 3
    with_new = Runtime(make_settings(tmp_path, settings.resolved_database_url, secret_key=None))
    try:
        with_new.tokens.load_keys(create=False)
        assert with_new.box.active_key_id != old_id
        report, kid = keyrotation.reencrypt(
            with_new.db, with_new.box, with_new.tokens, batch_size=3
        )
        assert report.old == 0 and report.unreadable == 0
        assert report.rewritten == 2 + 7 * 3 + 1 + 1 + 1  # idp x2, sessions x3, flow, key, cred
        assert kid is not None
        # the server that started before the rotation reads the new ciphertexts at once
        assert read_all(file_runtime, file_runtime.box) == EXPECTED
        assert file_runtime.box.active_key_id == with_new.box.active_key_id
        # tokens signed before still verify; new ones are signed with the new key
        assert with_new.tokens.verify(token_before)["sub"] == "1"
        token_after, _ = with_new.tokens.issue("1")
        assert kid in base64.urlsafe_b64decode(token_after.split(".")[0] + "==").decode()

        done = keyrotation.finish(settings, with_new.db, with_new.box, with_new.tokens)
        assert done.dropped_from_file == 1 and done.report.old == 0
        assert done.signing_keys_retire_after is not None  # old tokens may still be alive
        assert with_new.tokens.retire_previous_keys(timedelta(0)) is None
    finally:
        with_new.close()
    assert not keyrotation.in_progress(settings)
    assert len(settings.key_file.read_text().split()) == 1
    assert settings.key_file.stat().st_mode & 0o777 == 0o600
    only_new = SecretBox(*settings.keyring())
    assert read_all(file_runtime, only_new) == EXPECTED
    old_only = SecretBox(b"unused-" + b"x" * 40)
    with pytest.raises(DecryptionError):
        read_all(file_runtime, old_only)
    assert old_id not in only_new.key_ids


def test_finish_refuses_while_a_value_still_needs_the_old_key(
    file_runtime: Runtime, tmp_path: Path
) -> None:
    seed(file_runtime, sessions=1)
    settings = file_runtime.settings
    old_secret = settings.keyring()[0]
    keyrotation.begin(settings)
    rt = Runtime(make_settings(tmp_path, settings.resolved_database_url, secret_key=None))
    try:
        keyrotation.reencrypt(rt.db, rt.box, rt.tokens)
        # a server that had not switched yet writes under the old key meanwhile
        stale = SecretBox(old_secret).encrypt_str("late", context=REFRESH_TOKEN_CONTEXT)
        with rt.db.session() as db:
            row = db.scalars(select(Session)).one()
            row.refresh_token_enc = stale
        with pytest.raises(keyrotation.RotationError, match="still encrypted under an old key"):
            keyrotation.finish(settings, rt.db, rt.box, rt.tokens)
        assert keyrotation.in_progress(settings)  # nothing dropped
        keyrotation.reencrypt(rt.db, rt.box, rt.tokens)  # resumable
        keyrotation.finish(settings, rt.db, rt.box, rt.tokens)
    finally:
        rt.close()
    assert not keyrotation.in_progress(settings)


def test_env_key_rotation_uses_old_secret_keys_setting(tmp_path: Path, database_url: str) -> None:
    old = "old-secret-key-" + "o" * 40
    new = "new-secret-key-" + "n" * 40
    before = Runtime(make_settings(tmp_path, database_url, secret_key=old))
    before.start()
    seed(before, sessions=2)
    before.close()
    with pytest.raises(keyrotation.RotationError, match="GATEHOUSE_OLD_SECRET_KEYS"):
        keyrotation.begin(make_settings(tmp_path, database_url, secret_key=new))
    settings = make_settings(tmp_path, database_url, secret_key=new, old_secret_keys=old)
    assert keyrotation.begin(settings) is False  # nothing to write: the operator deployed it
    rt = Runtime(settings)
    try:
        rt.tokens.load_keys(create=False)
        report, kid = keyrotation.reencrypt(rt.db, rt.box, rt.tokens)
        assert report.old == 0 and report.rewritten > 0 and kid is not None
        keyrotation.finish(settings, rt.db, rt.box, rt.tokens)
    finally:
        rt.close()
    assert read_all(before, SecretBox(new.encode())) == EXPECTED


def test_csrf_and_flash_signatures_made_before_a_rotation_still_verify() -> None:
    old, new = b"o" * 40, b"n" * 40
    signature = SecretBox(old).sign("s:csrf")
    rotating = SecretBox(new, old)
    assert rotating.verify("s:csrf", signature)
    assert not SecretBox(new).verify("s:csrf", signature)
    assert key_id_of(new) == rotating.active_key_id


def test_a_deleted_key_file_never_makes_a_running_server_switch_keys(
    file_runtime: Runtime,
) -> None:
    seed(file_runtime, sessions=1)
    before = file_runtime.box.active_key_id
    file_runtime.settings.key_file.unlink()
    time.sleep(2.1)  # past the re-read interval
    blob = file_runtime.box.encrypt(b"x")
    assert blob[1:5] == before and not file_runtime.settings.key_file.exists()
    assert read_all(file_runtime, file_runtime.box) == EXPECTED
