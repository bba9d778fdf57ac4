"""User and account queries shared by the API and the `hft user` command."""

from __future__ import annotations

from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from hft.db.base import utcnow
from hft.db.models.auth import ROLES, Account, User


class UsernameTakenError(Exception):
    """The username (compared case-insensitively) already exists."""


def username_key(username: str) -> str:
    """The case-insensitive identity of a username."""
    return username.casefold()


async def get_user_by_username(session: AsyncSession, username: str) -> User | None:
    result = await session.execute(select(User).where(User.username_key == username_key(username)))
    return result.scalar_one_or_none()


async def create_user(
    session: AsyncSession,
    username: str,
    password_hash: str,
    *,
    role: str = "trader",
    starting_cash: Decimal,
) -> tuple[User, Account]:
    """Insert a user and its trading account (cash = `starting_cash`, a decimal amount) in
    the caller's write transaction.

    Raises UsernameTakenError (also when a concurrent insert wins the unique index) and
    ValueError for an unknown role.
    """
    if role not in ROLES:
        raise ValueError(f"role must be one of {', '.join(ROLES)}")
    if await get_user_by_username(session, username) is not None:
        raise UsernameTakenError(username)
    now = utcnow()
    user = User(
        username=username,
        username_key=username_key(username),
        password_hash=password_hash,
        role=role,
        is_active=True,
        created_at=now,
    )
    session.add(user)
    try:
        async with session.begin_nested():
            await session.flush()
    except IntegrityError as exc:
        raise UsernameTakenError(username) from exc
    account = Account(
        user_id=user.id,
        cash=starting_cash,
        reserved_cash=Decimal(0),
        trading_enabled=True,
        created_at=now,
        updated_at=now,
    )
    session.add(account)
    await session.flush()
    return user, account


async def account_id_of(session: AsyncSession, user_id: int) -> int | None:
    result = await session.execute(select(Account.id).where(Account.user_id == user_id))
    value = result.scalar_one_or_none()
    return None if value is None else int(value)


async def list_users(session: AsyncSession) -> list[tuple[User, Account | None]]:
    result = await session.execute(
        select(User, Account).outerjoin(Account, Account.user_id == User.id).order_by(User.id)
    )
    return [(row[0], row[1]) for row in result.all()]


__all__ = [
    "UsernameTakenError",
    "account_id_of",
    "create_user",
    "get_user_by_username",
    "list_users",
    "username_key",
]
