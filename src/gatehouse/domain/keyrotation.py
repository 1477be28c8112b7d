"""Secret-key rotation without downtime: ``gatehouse keys rotate`` and ``--finish``.

    begin      key file: the new key becomes line 1 of ``DATA_DIR/secret.key`` and the old keys
               stay below it. Every process decrypts with all of them and encrypts with line 1
               (``SecretBox`` follows the file, so running servers switch within seconds).
               ``GATEHOUSE_SECRET_KEY``: the operator deploys the new key there and the old one
               in ``GATEHOUSE_OLD_SECRET_KEYS`` (docs/operations.md) — no file to change.
    reencrypt  every value at rest that is not under the active key is decrypted and encrypted
               again, one short transaction per batch, written only if still unchanged since it
               was read (compare-and-set): a sign-in or token refresh running at the same time
               is never overwritten. Gatehouse's own signing key is replaced when it predates
               the active key.
    finish     a full scan: while any value still needs an old key, nothing is dropped. Then the
               old keys leave the key file (or the operator removes the setting) and the previous
               signing keys retire once no token they signed can still be valid.

Each value keeps its encryption context (AES-GCM associated data), so a ciphertext can never be
moved to another column or row and still decrypt.
"""

from __future__ import annotations

import base64
import os
import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import InstrumentedAttribute

from gatehouse.domain.access_tokens import AccessTokenService
from gatehouse.domain.crypto import DecryptionError, EncryptionContext, SecretBox
from gatehouse.settings import Settings
from gatehouse.store.db import Database
from gatehouse.store.models import (
    SYNC_CREDENTIAL_KEY,
    IdPConfig,
    KeyValue,
    OIDCFlow,
    Session,
    SigningKey,
)


class RotationError(Exception):
    """The rotation cannot go on; the message says what to do."""


@dataclass(frozen=True)
class EncryptedColumn:
    """One column of ciphertexts and the encryption context of each row."""

    name: str
    pk: InstrumentedAttribute[Any]
    column: InstrumentedAttribute[Any]
    context: Callable[[Any], bytes]


def _fixed(label: EncryptionContext) -> Callable[[Any], bytes]:
    value = label.encode()
    return lambda _pk: value


def _per_row(label: EncryptionContext) -> Callable[[Any], bytes]:
    return lambda pk: (label + str(pk)).encode()


#: Every encrypted column and its context from the one table, ``crypto.EncryptionContext``
#: (grep ``box.encrypt`` when adding one; a test checks the models and the table).
COLUMNS: tuple[EncryptedColumn, ...] = (
    EncryptedColumn(
        "idp_configs.client_secret_enc",
        IdPConfig.version,
        IdPConfig.client_secret_enc,
        _fixed(EncryptionContext.IDP_CLIENT_SECRET),
    ),
    EncryptedColumn(
        "idp_configs.private_key_jwk_enc",
        IdPConfig.version,
        IdPConfig.private_key_jwk_enc,
        _fixed(EncryptionContext.IDP_PRIVATE_KEY),
    ),
    EncryptedColumn(
        "sessions.refresh_token_enc",
        Session.id_hash,
        Session.refresh_token_enc,
        _fixed(EncryptionContext.SESSION_REFRESH_TOKEN),
    ),
    EncryptedColumn(
        "sessions.id_token_enc",
        Session.id_hash,
        Session.id_token_enc,
        _fixed(EncryptionContext.SESSION_ID_TOKEN),
    ),
    EncryptedColumn(
        "sessions.id_token_claims_enc",
        Session.id_hash,
        Session.id_token_claims_enc,
        _fixed(EncryptionContext.SESSION_ID_TOKEN_CLAIMS),
    ),
    EncryptedColumn(
        "oidc_flows.data_enc",
        OIDCFlow.state_hash,
        OIDCFlow.data_enc,
        _per_row(EncryptionContext.OIDC_FLOW),
    ),
    EncryptedColumn(
        "signing_keys.private_key_enc",
        SigningKey.kid,
        SigningKey.private_key_enc,
        _fixed(EncryptionContext.SIGNING_KEY),
    ),
)
#: Environment role: the console credential, base64 inside a JSON value.
CREDENTIAL_NAME = "key_values." + SYNC_CREDENTIAL_KEY
CREDENTIAL_CONTEXT = EncryptionContext.SYNC_CREDENTIAL


@dataclass
class Counts:
    current: int = 0
    old: int = 0
    unreadable: int = 0
    rewritten: int = 0


@dataclass
class Report:
    """Per column: how many values are under the active key, an old key, or no key we have."""

    columns: dict[str, Counts] = field(default_factory=dict)

    def of(self, name: str) -> Counts:
        return self.columns.setdefault(name, Counts())

    @property
    def old(self) -> int:
        return sum(c.old for c in self.columns.values())

    @property
    def unreadable(self) -> int:
        return sum(c.unreadable for c in self.columns.values())

    @property
    def rewritten(self) -> int:
        return sum(c.rewritten for c in self.columns.values())


# -- the key file ------------------------------------------------------------------------------
def _write_key_file(settings: Settings, keys: list[str]) -> None:
    path = settings.key_file
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write("\n".join(keys) + "\n")
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def _file_keys(settings: Settings) -> list[str]:
    settings.keyring()  # creates the file on a first start
    return [line.strip() for line in settings.key_file.read_text().splitlines() if line.strip()]


def in_progress(settings: Settings) -> bool:
    """Whether keys that only decrypt are configured (a rotation has begun, not finished)."""
    return len(settings.keyring()) > 1


def begin(settings: Settings, new_key: str | None = None) -> bool:
    """Make a new key active, the current one decrypt-only. False: one is already in progress.

    :raises RotationError: the key comes from ``GATEHOUSE_SECRET_KEY`` (the operator deploys the
        new key), or ``new_key`` is too short or already in use
    """
    if settings.secret_key:
        if not settings.old_secret_keys.strip():
            raise RotationError(
                "GATEHOUSE_SECRET_KEY is set, so the new key is yours to deploy: set "
                "GATEHOUSE_SECRET_KEY to the new key and GATEHOUSE_OLD_SECRET_KEYS to the old one "
                "on every replica, then run `gatehouse keys rotate` (docs/operations.md)."
            )
        if new_key is not None:
            raise RotationError("GATEHOUSE_SECRET_KEY is set: deploy the new key there instead.")
        return False
    keys = _file_keys(settings)
    if len(keys) > 1:
        if new_key is not None:
            raise RotationError(
                "A rotation is already in progress; finish it (`gatehouse keys rotate`, then "
                "`--finish`) before starting another one."
            )
        return False
    key = new_key if new_key is not None else secrets.token_urlsafe(48)
    if len(key) < 32:
        raise RotationError("The new key must be at least 32 characters (use 48 random bytes).")
    if key in keys or "," in key or any(c.isspace() for c in key):
        raise RotationError("The new key must differ from the current one and hold no spaces.")
    _write_key_file(settings, [key, *keys])
    return True


# -- re-encryption -----------------------------------------------------------------------------
def _batches(
    db: Database, column: EncryptedColumn, batch_size: int
) -> Iterator[list[tuple[Any, bytes]]]:
    last: Any = None
    while True:
        query = (
            select(column.pk, column.column)
            .where(column.column.is_not(None))
            .order_by(column.pk)
            .limit(batch_size)
        )
        if last is not None:
            query = query.where(column.pk > last)
        with db.session() as s:
            rows = [(pk, bytes(blob)) for pk, blob in s.execute(query)]
        if not rows:
            return
        yield rows
        last = rows[-1][0]


#: ``progress(values_seen, values_total)``, told after each batch (the CLI draws a bar)
Progress = Callable[[int, int], None]


def _visit(
    db: Database,
    box: SecretBox,
    column: EncryptedColumn,
    counts: Counts,
    *,
    rewrite: bool,
    batch_size: int,
    seen: Callable[[int], None] = lambda _n: None,
) -> None:
    model = column.pk.class_
    for rows in _batches(db, column, batch_size):
        seen(len(rows))
        changes: list[tuple[Any, bytes, bytes]] = []
        for pk, blob in rows:
            if box.is_current(blob):
                counts.current += 1
                continue
            context = column.context(pk)
            try:
                plaintext = box.decrypt(blob, context=context)
            except DecryptionError:
                counts.unreadable += 1
                continue
            if not rewrite:
                counts.old += 1
                continue
            changes.append((pk, blob, box.encrypt(plaintext, context=context)))
        if not changes:
            continue
        with db.session() as s:  # one short transaction per batch
            for pk, blob, new in changes:
                result = s.execute(
                    update(model)
                    .where(column.pk == pk, column.column == blob)
                    .values({column.column.key: new})
                    .execution_options(synchronize_session=False)
                )
                if getattr(result, "rowcount", 0) == 1:
                    counts.rewritten += 1
                    counts.current += 1
                # else: rewritten meanwhile by the server, under the active key


def _visit_credential(db: Database, box: SecretBox, counts: Counts, *, rewrite: bool) -> None:
    with db.session() as s:
        row = s.get(KeyValue, SYNC_CREDENTIAL_KEY, with_for_update=True)
        if row is None or "credential_enc" not in row.value:
            return
        blob = base64.b64decode(row.value["credential_enc"])
        if box.is_current(blob):
            counts.current += 1
            return
        try:
            secret = box.decrypt(blob, context=CREDENTIAL_CONTEXT.encode())
        except DecryptionError:
            counts.unreadable += 1
            return
        if not rewrite:
            counts.old += 1
            return
        new = box.encrypt(secret, context=CREDENTIAL_CONTEXT.encode())
        row.value = {**row.value, "credential_enc": base64.b64encode(new).decode()}
        counts.rewritten += 1
        counts.current += 1


def _total(db: Database) -> int:
    """How many encrypted values there are (for a progress bar; one COUNT per column)."""
    with db.session() as s:
        return sum(
            int(s.scalar(select(func.count()).where(c.column.is_not(None))) or 0) for c in COLUMNS
        )


def scan(
    db: Database,
    box: SecretBox,
    *,
    rewrite: bool = False,
    batch_size: int = 200,
    progress: Progress | None = None,
) -> Report:
    """Count every encrypted value by key; with ``rewrite``, re-encrypt the old ones."""
    report = Report()
    total = _total(db) if progress is not None else 0
    done = 0

    def seen(n: int) -> None:
        nonlocal done
        done += n
        if progress is not None:
            progress(done, max(total, done))

    for column in COLUMNS:
        _visit(
            db,
            box,
            column,
            report.of(column.name),
            rewrite=rewrite,
            batch_size=batch_size,
            seen=seen,
        )
    _visit_credential(db, box, report.of(CREDENTIAL_NAME), rewrite=rewrite)
    return report


def _signing_key_predates(db: Database, box: SecretBox) -> bool:
    with db.session() as s:
        newest = s.scalars(
            select(SigningKey)
            .where(SigningKey.retired_at.is_(None))
            .order_by(SigningKey.created_at.desc())
            .limit(1)
        ).first()
        return newest is not None and not box.is_current(newest.private_key_enc)


def reencrypt(
    db: Database,
    box: SecretBox,
    tokens: AccessTokenService,
    *,
    batch_size: int = 200,
    progress: Progress | None = None,
) -> tuple[Report, str | None]:
    """Re-encrypt everything under the active key; a new signing key when ours predates it.

    Returns the report and the new signing key's kid (None when it was already current).
    """
    rotate_signing = _signing_key_predates(db, box)
    report = scan(db, box, rewrite=True, batch_size=batch_size, progress=progress)
    kid = tokens.rotate_signing_key() if rotate_signing else None
    return report, kid


@dataclass(frozen=True)
class Finished:
    report: Report
    dropped_from_file: int
    signing_keys_retire_after: datetime | None


def finish(
    settings: Settings, db: Database, box: SecretBox, tokens: AccessTokenService
) -> Finished:
    """Drop the old keys once nothing needs them; retire the previous signing keys when safe.

    :raises RotationError: values still encrypted under an old key (run ``rotate`` again)
    """
    report = scan(db, box)
    if report.old:
        raise RotationError(
            f"{report.old} value(s) are still encrypted under an old key (written by a server "
            "that had not switched yet). Run `gatehouse keys rotate` again, then `--finish`."
        )
    dropped = 0
    if not settings.secret_key:
        keys = _file_keys(settings)
        dropped = len(keys) - 1
        if dropped:
            _write_key_file(settings, keys[:1])
    # a token signed by a previous key lives at most access_token_minutes (+ clock skew)
    grace = timedelta(minutes=settings.access_token_minutes, seconds=60)
    return Finished(report, dropped, tokens.retire_previous_keys(grace))
