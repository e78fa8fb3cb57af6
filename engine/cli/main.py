"""The ``weft`` command line.

``weft dev`` runs the whole embedded stack; ``weft api`` and ``weft worker``
run one part each (the scale-out stack runs them as separate services);
``weft migrate`` and ``weft admin …`` manage the database.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any, NoReturn

from sqlalchemy.exc import DBAPIError, OperationalError

from engine.platform.errors import WeftError
from engine.platform.queues import TaskQueue
from engine.platform.settings import Settings, SettingsError, get_settings


class CliError(Exception):
    """A failure to report as one line on stderr."""


def fail(message: str, code: int = 1) -> NoReturn:
    print(f"weft: error: {message}", file=sys.stderr)
    raise SystemExit(code)


def _logging(settings: Settings) -> None:
    """Every line of this process in WEFT_LOG_FORMAT (text or JSON), uvicorn's too."""
    from engine.platform.logs import configure_logging

    configure_logging(settings)


# --- commands ----------------------------------------------------------------


def cmd_dev(settings: Settings, args: argparse.Namespace) -> int:
    from engine.cli.dev import DevStack

    _logging(settings)  # the supervisor's own lines; its children set up theirs
    return DevStack(settings).run()


# An idle client connection stays open longer than clients keep theirs (httpx
# and the SDK: 5 s; load balancers: 60 s). At uvicorn's default of 5 s, a
# client reusing a connection the API was closing at that moment got a
# ReadError, and its request never arrived (found by bench/soak.py).
API_KEEP_ALIVE_SECONDS = 75


def cmd_api(settings: Settings, args: argparse.Namespace) -> int:
    import uvicorn

    from api.app import create_app
    from engine.audit.request_history import RedactAccessLog
    from engine.platform.ports import require_free

    host = args.host or settings.api_host
    port = args.port or settings.api_port
    require_free(host, port, "WEFT_API_PORT")
    _logging(settings)
    workers = args.workers or settings.api_workers
    config = uvicorn.Config(
        # Several workers: each process builds its own app from the same settings.
        "api.app:create_app" if workers > 1 else create_app,
        factory=True,
        workers=workers,
        host=host,
        port=port,
        log_level=settings.log_level.lower(),
        log_config=None,  # uvicorn's lines go through _logging's handler
        timeout_graceful_shutdown=5,
        timeout_keep_alive=API_KEEP_ALIVE_SECONDS,
        server_header=False,  # no `server: uvicorn` telling what to attack
        # Forwarded headers only from the proxies named in WEFT_TRUSTED_PROXIES:
        # uvicorn's default believes any client connecting from loopback.
        proxy_headers=bool(settings.trusted_proxies),
        forwarded_allow_ips=settings.trusted_proxies or None,
    )
    # On the logger itself, whatever handler writes it: no secrets in the access log.
    logging.getLogger("uvicorn.access").addFilter(RedactAccessLog())
    if workers > 1:
        from uvicorn.supervisors import Multiprocess

        Multiprocess(config, sockets=[config.bind_socket()]).run()
    else:
        uvicorn.Server(config).run()
    return 0


def cmd_worker(settings: Settings, args: argparse.Namespace) -> int:
    from engine.platform.queues import parse_queues

    try:
        queues = parse_queues(args.queues)
    except ValueError as exc:
        raise CliError(str(exc)) from None
    if args.check:
        _check_workers(settings, queues)
    _logging(settings)
    from workers.main import run_workers

    async def serve() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await run_workers(settings, queues, stop)

    asyncio.run(serve())
    # The workers have shut down cleanly; skip interpreter finalisation, which can
    # abort in the Temporal SDK's native runtime (sdk-python#300).
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def _check_workers(settings: Settings, queues: list[TaskQueue]) -> NoReturn:
    """A container healthcheck: exit 0 when Temporal reports a live poller from this
    host on every queue, else print what is missing and exit 1."""
    import socket

    from engine.platform import temporal
    from engine.platform.health import check_queue

    mine = f"weft@{socket.gethostname()}:"

    async def missing() -> list[str]:
        client = await temporal.connect(settings)
        found = []
        for queue in queues:
            result = await check_queue(client, queue, settings.task_queue_prefix)
            identities = result.details.get("identities", [])
            if not any(str(identity).startswith(mine) for identity in identities):
                found.append(f"{queue.value}: {result.error or 'no poller from this host'}")
        return found

    try:
        absent = asyncio.run(missing())
    except RuntimeError as exc:
        absent = [f"cannot reach Temporal at {settings.temporal_target}: {exc}"]
    print("\n".join(absent) if absent else "every queue has a live worker on this host")
    sys.stdout.flush()
    os._exit(1 if absent else 0)  # skip finalisation (sdk-python#300)


def cmd_setup_temporal(settings: Settings, args: argparse.Namespace) -> int:
    """Register the Weft* search attributes on the configured Temporal server."""
    from engine.platform import temporal

    async def register() -> list[str]:
        client = await temporal.connect(settings)
        return await temporal.ensure_search_attributes(client)

    try:
        added = asyncio.run(register())
    except RuntimeError as exc:
        raise CliError(f"cannot reach Temporal at {settings.temporal_target}: {exc}") from None
    print(f"registered {', '.join(added)}" if added else "search attributes already registered")
    sys.stdout.flush()
    os._exit(0)  # skip finalisation: the Temporal runtime can abort it (sdk-python#300)


def cmd_migrate(settings: Settings, args: argparse.Namespace) -> int:
    from engine.db.migrate import upgrade

    upgrade(settings, args.revision)
    print(f"database at revision {args.revision}")
    return 0


def _in_transaction(settings: Settings, work: Callable[[Any], Awaitable[str]]) -> int:
    from engine.db.connection import create_engine, create_sessionmaker, transaction

    async def go() -> str:
        engine = create_engine(settings)
        try:
            async with transaction(create_sessionmaker(engine)) as session:
                return await work(session)
        finally:
            await engine.dispose()

    print(asyncio.run(go()))
    return 0


def cmd_create_tenant(settings: Settings, args: argparse.Namespace) -> int:
    from engine.identity import accounts

    async def work(session: Any) -> str:
        tenant = await accounts.create_tenant(session, args.name)
        return f"tenant {tenant.id} ({tenant.name})"

    return _in_transaction(settings, work)


def cmd_rotate_secrets(settings: Settings, args: argparse.Namespace) -> int:
    from engine.db.secrets import rotate_stored_secrets

    async def work(session: Any) -> str:
        counts = await rotate_stored_secrets(session, settings)
        done = ", ".join(f"{table} {count}" for table, count in counts.items())
        return f"re-encrypted with the first encryption key: {done}"

    return _in_transaction(settings, work)


def cmd_create_user(settings: Settings, args: argparse.Namespace) -> int:
    from engine.identity import accounts
    from engine.identity.hashing import new_password

    password = args.password or new_password()

    async def work(session: Any) -> str:
        tenant = await accounts.find_tenant(session, args.tenant)
        user = await accounts.create_user(
            session, tenant, args.email, password, role=args.role, full_name=args.name
        )
        shown = "" if args.password else f"\npassword: {password}  (shown once)"
        return f"user {user.id} ({user.email}, {user.role}) in tenant {tenant.name}{shown}"

    return _in_transaction(settings, work)


def cmd_create_api_key(settings: Settings, args: argparse.Namespace) -> int:
    from engine.identity import accounts

    expires = datetime.fromisoformat(args.expires_at) if args.expires_at else None
    if expires is not None and expires.tzinfo is None:
        raise CliError("--expires-at needs a timezone, e.g. 2026-12-31T23:59:59Z")
    scopes = [scope.strip() for scope in args.scopes.split(",") if scope.strip()]

    async def work(session: Any) -> str:
        user = await accounts.find_user(session, args.email)
        issued = await accounts.create_api_key(session, user, args.name, scopes, expires_at=expires)
        return f"api key {issued.record.id} for {user.email}\nkey: {issued.secret}  (shown once)"

    return _in_transaction(settings, work)


def cmd_pipelines(settings: Settings, args: argparse.Namespace) -> int:
    from engine.cli.pipelines import run_command

    return run_command(settings, args)


# --- parser ----------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="weft", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    sub.add_parser("dev", help="run the embedded stack: Temporal, worker and API").set_defaults(
        handler=cmd_dev
    )

    api = sub.add_parser("api", help="run the HTTP API")
    api.add_argument("--host")
    api.add_argument("--port", type=int)
    api.add_argument(
        "--workers",
        type=int,
        help="API worker processes sharing the port (default WEFT_API_WORKERS, 1)",
    )
    api.set_defaults(handler=cmd_api)

    worker = sub.add_parser("worker", help="run a worker for some task queues")
    worker.add_argument(
        "--queues",
        default="all",
        help="comma-separated: weft-workflows,weft-io,weft-cpu,weft-ml (default: all)",
    )
    worker.add_argument(
        "--check",
        action="store_true",
        help="do not serve: exit 0 if a worker on this host polls every queue (healthcheck)",
    )
    worker.set_defaults(handler=cmd_worker)

    sub.add_parser(
        "setup-temporal", help="register the Weft* search attributes on TEMPORAL_ADDRESS"
    ).set_defaults(handler=cmd_setup_temporal)

    migrate = sub.add_parser("migrate", help="apply database migrations")
    migrate.add_argument("--revision", default="head")
    migrate.set_defaults(handler=cmd_migrate)

    admin = sub.add_parser("admin", help="manage tenants, users and API keys")
    admin_sub = admin.add_subparsers(dest="admin_command", required=True)
    tenant = admin_sub.add_parser("create-tenant")
    tenant.add_argument("name")
    tenant.set_defaults(handler=cmd_create_tenant)
    user = admin_sub.add_parser("create-user")
    user.add_argument("--tenant", required=True, help="tenant id or name")
    user.add_argument("--email", required=True)
    user.add_argument("--password", help="generated and shown once when omitted")
    user.add_argument("--role", default="user")
    user.add_argument("--name")
    user.set_defaults(handler=cmd_create_user)
    key = admin_sub.add_parser("create-api-key")
    key.add_argument("--email", required=True, help="the user who owns the key")
    key.add_argument("--name", required=True)
    key.add_argument("--scopes", default="", help="comma-separated scopes")
    key.add_argument("--expires-at", help="ISO 8601 with timezone")
    key.set_defaults(handler=cmd_create_api_key)
    admin_sub.add_parser(
        "rotate-secrets", help="re-encrypt stored secrets with the first WEFT_ENCRYPTION_KEYS key"
    ).set_defaults(handler=cmd_rotate_secrets)

    from engine.cli.pipelines import add_parser as add_pipelines_parser

    add_pipelines_parser(sub).set_defaults(handler=cmd_pipelines)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    # What weft creates (SQLite databases, the Temporal history, blobs, request
    # history, the JWT secret) holds credentials and personal data: owner only.
    os.umask(0o077)
    try:
        settings = get_settings()
        return int(args.handler(settings, args))
    except SettingsError as exc:
        fail(str(exc), 2)
    except (CliError, WeftError) as exc:
        fail(str(exc))
    except (OperationalError, DBAPIError) as exc:
        reason = str(exc.orig).splitlines()[0] if exc.orig else type(exc).__name__
        fail(f"cannot use the database: {reason} (check DATABASE_URL)")
    except KeyboardInterrupt:
        return 130
