"""Identity tables: users, their trading accounts, API keys and the audit log."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    String,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from hft.db.base import Base, BigIntId, Numeric, UtcDateTime, utcnow

ROLES = ("trader", "admin")

JsonDoc = JSON().with_variant(JSONB(), "postgresql")


class User(Base):
    """A person or program that logs in. `username_key` is the case-folded username,
    unique, so "Alice" and "alice" cannot both exist. Users are deactivated, never deleted
    (their orders and audit trail refer to them)."""

    __tablename__ = "users"
    __table_args__ = (
        CheckConstraint("role IN ('trader', 'admin')", name="role"),
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(64))
    username_key: Mapped[str] = mapped_column(String(64), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(16), default="trader")
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


class Account(Base):
    """A user's trading account. `id` is the engine's account_id (never reused: SQLite
    AUTOINCREMENT). Cash and reservations are decimals in the quote currency;
    `trading_enabled` is the account's kill switch."""

    __tablename__ = "accounts"
    __table_args__ = ({"sqlite_autoincrement": True},)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), unique=True)
    cash: Mapped[Decimal] = mapped_column(Numeric())
    reserved_cash: Mapped[Decimal] = mapped_column(Numeric(), default=Decimal(0))
    trading_enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    # Raised by every order-entry transaction that writes the account: how a concurrent
    # entry learns that orders were added after its snapshot (hft.api.trading.entry).
    entry_version: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow, onupdate=utcnow)


class ApiKey(Base):
    """An API key for programs. `key_id` is public (sent in X-API-Key).

    The secret is not stored at all, not even hashed: it is derived as
    HMAC-SHA256(server master key, key_id + salt), with only the random `secret_salt` in
    the database. Verifying an HMAC request signature needs the secret itself, so a
    one-way hash (as for passwords) cannot work; a plain copy would let anyone with a
    database dump sign requests. With derivation, a dump alone is useless without the
    master key, which lives outside the database (data dir file or env). `secret_check`
    is a keyed fingerprint that detects a changed master key.
    """

    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    key_id: Mapped[str] = mapped_column(String(40), unique=True)
    secret_salt: Mapped[str] = mapped_column(String(64))
    secret_check: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)


class AuditEntry(Base):
    """One append-only audit record. Database triggers refuse UPDATE and DELETE (and
    TRUNCATE on PostgreSQL); see migration 0001_identity."""

    __tablename__ = "audit_log"
    __table_args__ = (Index("ix_audit_log_user_id_ts", "user_id", "ts"),)

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True)
    ts: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow, index=True)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), nullable=True)
    action: Mapped[str] = mapped_column(String(64), index=True)
    target: Mapped[str | None] = mapped_column(String(128), nullable=True)
    details: Mapped[dict[str, Any]] = mapped_column(JsonDoc, default=dict)
    ip: Mapped[str | None] = mapped_column(String(64), nullable=True)
    request_id: Mapped[str | None] = mapped_column(String(64), nullable=True)


__all__ = ["ROLES", "Account", "ApiKey", "AuditEntry", "User"]
