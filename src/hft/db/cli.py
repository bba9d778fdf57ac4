"""`hft user ...` and `hft db ...`: users and the database schema from the command line.

    hft user create USERNAME [--password P | --password-stdin] [--admin]
    hft user list
    hft user set-role USERNAME trader|admin
    hft user set-active USERNAME true|false
    hft user set-password USERNAME [--password P | --password-stdin]
    hft db upgrade [--revision head]
    hft db current
    hft db revision -m MESSAGE [--autogenerate]     (for developers)

Each takes --config, --database-url and --data-dir like `hft api`. Errors print one line
to stderr and exit 1 (2 for usage errors); nothing is changed then.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
import sys
from collections.abc import Awaitable, Callable
from typing import Any

from pydantic import ValidationError
from sqlalchemy.exc import SQLAlchemyError

from hft.api.settings import Settings, load_settings

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2


class CliError(Exception):
    """A user-facing error: printed as `hft: <message>`, exit status 1."""


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", help="YAML config file (env HFT_CONFIG)")
    p.add_argument("--database-url", help="SQLAlchemy async URL (env HFT_DATABASE_URL)")
    p.add_argument("--data-dir", help="data directory of the backend (env HFT_DATA_DIR)")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="hft", description="Users and database schema.")
    groups = p.add_subparsers(dest="group", required=True, metavar="user|db")

    user = groups.add_parser("user", help="manage users")
    users = user.add_subparsers(dest="command", required=True)
    create = users.add_parser("create", help="create a user with a trading account")
    create.add_argument("username")
    pw = create.add_mutually_exclusive_group()
    pw.add_argument("--password", help="the password (default: generate and print one)")
    pw.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
    create.add_argument("--admin", action="store_true", help="give the user the admin role")
    _common(create)
    lst = users.add_parser("list", help="list users")
    lst.add_argument("--json", action="store_true", help="one JSON object per line")
    _common(lst)
    role = users.add_parser("set-role", help="change a user's role")
    role.add_argument("username")
    role.add_argument("role", choices=["trader", "admin"])
    _common(role)
    setpw = users.add_parser("set-password", help="set a new password (printed when generated)")
    setpw.add_argument("username")
    pw2 = setpw.add_mutually_exclusive_group()
    pw2.add_argument("--password", help="the new password (default: generate and print one)")
    pw2.add_argument("--password-stdin", action="store_true", help="read it from stdin")
    _common(setpw)
    active = users.add_parser("set-active", help="deactivate or reactivate a user")
    active.add_argument("username")
    active.add_argument("active", choices=["true", "false"])
    _common(active)

    db = groups.add_parser("db", help="database schema")
    dbs = db.add_subparsers(dest="command", required=True)
    up = dbs.add_parser("upgrade", help="apply migrations (default: up to the newest)")
    up.add_argument("--revision", default="head")
    _common(up)
    cur = dbs.add_parser("current", help="print the schema revision of the database")
    _common(cur)
    rev = dbs.add_parser("revision", help="create a migration file (developers)")
    rev.add_argument("-m", "--message", required=True)
    rev.add_argument("--autogenerate", action="store_true")
    rev.add_argument("--rev-id", help="revision id, e.g. 0003_candles")
    _common(rev)
    return p


def _settings(args: argparse.Namespace) -> Settings:
    return load_settings(
        args.config,
        database_url=args.database_url,
        data_dir=args.data_dir,
    )


async def _with_db(settings: Settings, fn: Callable[[Any], Awaitable[int]]) -> int:
    from hft.db.migrate import upgrade
    from hft.db.session import Database

    db = Database(settings.database_url, pool_size=2)
    try:
        await upgrade(db.engine)
        return await fn(db)
    finally:
        await db.dispose()


def _read_password(args: argparse.Namespace) -> tuple[str, bool]:
    if args.password_stdin:
        line = sys.stdin.readline()
        return line.rstrip("\r\n"), False
    if args.password is not None:
        return str(args.password), False
    return secrets.token_urlsafe(15), True


def cmd_user_create(args: argparse.Namespace) -> int:
    from hft.api.audit import record
    from hft.api.errors import ApiError
    from hft.api.routers.auth import check_password_policy
    from hft.api.schemas import USERNAME_RE
    from hft.api.security import Passwords
    from hft.db.session import write_transaction
    from hft.db.users import UsernameTakenError, create_user

    settings = _settings(args)
    if not USERNAME_RE.match(args.username):
        raise CliError(
            "username must be 3-32 letters, digits, '_', '.' or '-', "
            "starting with a letter or digit"
        )
    password, generated = _read_password(args)
    try:
        check_password_policy(args.username, password, settings.password_min_length)
    except ApiError as exc:
        raise CliError(exc.message) from exc
    password_hash = Passwords(settings.argon2_time_cost, settings.argon2_memory_kib).hash_sync(
        password
    )
    role = "admin" if args.admin else "trader"

    async def create(db: Any) -> int:
        async with db.session() as session:
            try:
                async with write_transaction(session):
                    user, account = await create_user(
                        session,
                        args.username,
                        password_hash,
                        role=role,
                        starting_cash=settings.starting_cash,
                    )
                    record(
                        session,
                        "user.create",
                        target=f"user:{user.id}",
                        details={"username": user.username, "role": role, "via": "cli"},
                    )
            except UsernameTakenError as exc:
                raise CliError(f"username {args.username!r} is taken") from exc
        print(f"created {role} {user.username!r} (user id {user.id}, account id {account.id})")
        if generated:
            print(f"password: {password}")
            print("(shown only now; store it somewhere safe)")
        return EXIT_OK

    return asyncio.run(_with_db(settings, create))


def cmd_user_list(args: argparse.Namespace) -> int:
    from hft.db.users import list_users

    settings = _settings(args)

    async def show(db: Any) -> int:
        async with db.session() as session:
            rows = await list_users(session)
        if args.json:
            for user, account in rows:
                print(
                    json.dumps(
                        {
                            "id": str(user.id),
                            "username": user.username,
                            "role": user.role,
                            "is_active": user.is_active,
                            "account_id": None if account is None else str(account.id),
                            "created_at": user.created_at.isoformat(),
                        }
                    )
                )
            return EXIT_OK
        print(f"{'id':>6}  {'username':<32} {'role':<7} {'active':<6} {'account':>7}")
        for user, account in rows:
            acct = "-" if account is None else str(account.id)
            active = "yes" if user.is_active else "no"
            print(f"{user.id:>6}  {user.username:<32} {user.role:<7} {active:<6} {acct:>7}")
        return EXIT_OK

    return asyncio.run(_with_db(settings, show))


def _cmd_user_change(args: argparse.Namespace, field: str, value: Any) -> int:
    from hft.api.audit import record
    from hft.db.session import write_transaction
    from hft.db.users import get_user_by_username

    settings = _settings(args)

    async def change(db: Any) -> int:
        async with db.session() as session, write_transaction(session):
            user = await get_user_by_username(session, args.username)
            if user is None:
                raise CliError(f"no user {args.username!r}")
            old = getattr(user, field)
            if old != value:
                setattr(user, field, value)
                record(
                    session,
                    "user.update",
                    target=f"user:{user.id}",
                    details={field: {"from": old, "to": value}, "via": "cli"},
                )
        print(f"{user.username}: {field} = {value}")
        return EXIT_OK

    return asyncio.run(_with_db(settings, change))


def cmd_user_set_password(args: argparse.Namespace) -> int:
    from hft.api.audit import record
    from hft.api.errors import ApiError
    from hft.api.routers.auth import check_password_policy
    from hft.api.security import Passwords
    from hft.db.session import write_transaction
    from hft.db.users import get_user_by_username

    settings = _settings(args)
    password, generated = _read_password(args)

    async def change(db: Any) -> int:
        async with db.session() as session, write_transaction(session):
            user = await get_user_by_username(session, args.username)
            if user is None:
                raise CliError(f"no user {args.username!r}")
            try:
                check_password_policy(user.username, password, settings.password_min_length)
            except ApiError as exc:
                raise CliError(exc.message) from exc
            hasher = Passwords(settings.argon2_time_cost, settings.argon2_memory_kib)
            user.password_hash = hasher.hash_sync(password)
            record(
                session,
                "user.set_password",
                target=f"user:{user.id}",
                details={"via": "cli", "generated": generated},
            )
        print(f"{user.username}: password changed")
        if generated:
            print(f"password: {password}")
            print("(shown only now; store it somewhere safe)")
        return EXIT_OK

    return asyncio.run(_with_db(settings, change))


def cmd_db_upgrade(args: argparse.Namespace) -> int:
    from hft.db.migrate import current_revision, upgrade
    from hft.db.session import create_engine

    settings = _settings(args)

    async def run() -> int:
        engine = create_engine(settings.database_url, pool_size=1)
        try:
            await upgrade(engine, args.revision)
            print(f"database at revision {await current_revision(engine)}")
        finally:
            await engine.dispose()
        return EXIT_OK

    return asyncio.run(run())


def cmd_db_current(args: argparse.Namespace) -> int:
    from hft.db.migrate import current_revision, head_revision
    from hft.db.session import create_engine

    settings = _settings(args)

    async def run() -> int:
        engine = create_engine(settings.database_url, pool_size=1)
        try:
            rev = await current_revision(engine)
        finally:
            await engine.dispose()
        head = head_revision()
        state = "up to date" if rev == head else f"behind (head is {head})"
        print(f"{rev or '(empty database)'}  {state}")
        return EXIT_OK

    return asyncio.run(run())


def cmd_db_revision(args: argparse.Namespace) -> int:
    from alembic import command

    from hft.db.migrate import alembic_config

    settings = _settings(args)
    command.revision(
        alembic_config(settings.database_url),
        message=args.message,
        autogenerate=args.autogenerate,
        rev_id=args.rev_id,
    )
    return EXIT_OK


def main(argv: list[str]) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        return int(exc.code or 0)
    handlers: dict[tuple[str, str], Callable[[argparse.Namespace], int]] = {
        ("user", "create"): cmd_user_create,
        ("user", "list"): cmd_user_list,
        ("user", "set-role"): lambda a: _cmd_user_change(a, "role", a.role),
        ("user", "set-password"): cmd_user_set_password,
        ("user", "set-active"): lambda a: _cmd_user_change(a, "is_active", a.active == "true"),
        ("db", "upgrade"): cmd_db_upgrade,
        ("db", "current"): cmd_db_current,
        ("db", "revision"): cmd_db_revision,
    }
    try:
        return handlers[(args.group, args.command)](args)
    except CliError as exc:
        print(f"hft: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except (ValidationError, ValueError) as exc:
        print(f"hft: invalid configuration: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except (OSError, SQLAlchemyError) as exc:
        print(f"hft: database error: {exc}", file=sys.stderr)
        return EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
