"""A private PostgreSQL server for tests: ``initdb`` + ``pg_ctl`` in a temp dir, on a free
loopback port, never the machine's own server on 5432.

PostgreSQL refuses to run as root, and CI runs as root: then the server runs as the
unprivileged user ``nobody`` (its files chowned to it). Each test gets its own schema on the
one server (``search_path`` in the URL), so tests stay independent and fast.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
import uuid
from pathlib import Path
from typing import Any

from engine.bus.broker import free_port

USER = "controlroom"


def pg_bin_dir() -> Path | None:
    """Where ``initdb`` and ``pg_ctl`` are: ``CONTROLROOM_PG_BIN``, the PATH, or the newest
    ``/usr/lib/postgresql/*/bin`` (Debian keeps them off the PATH)."""
    named = os.environ.get("CONTROLROOM_PG_BIN")
    if named:
        return Path(named)
    found = shutil.which("pg_ctl")
    if found and shutil.which("initdb"):
        return Path(found).parent
    versions = [d for d in glob.glob("/usr/lib/postgresql/*/bin") if Path(d).parent.name.isdigit()]
    dirs = sorted(versions, key=lambda d: int(Path(d).parent.name))
    for d in reversed(dirs):
        if (Path(d) / "initdb").exists() and (Path(d) / "pg_ctl").exists():
            return Path(d)
    return None


class PostgresServer:
    def __init__(self, bin_dir: Path, root: Path | None = None) -> None:
        self.bin = bin_dir
        self.root = root or Path(tempfile.mkdtemp(prefix="controlroom-pg-"))
        self.data = self.root / "data"
        self.port = free_port()
        self.as_nobody = os.geteuid() == 0
        self.log = self.root / "server.log"

    def _run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        extra: dict[str, Any] = {}
        if self.as_nobody:
            extra = {"user": 65534, "group": 65534, "extra_groups": []}
        return subprocess.run(
            [str(self.bin / args[0]), *args[1:]],
            check=check,
            capture_output=True,
            text=True,
            timeout=120,
            cwd=self.root,
            **extra,
        )

    def start(self) -> PostgresServer:
        if self.as_nobody:
            os.chown(self.root, 65534, 65534)
        if not self.data.exists():
            self._run(
                "initdb", "-D", str(self.data), "-U", USER, "-A", "trust", "-E", "UTF8",
                "--no-sync", "--data-checksums", "--wal-segsize=1",
            )  # fmt: skip
        options = (
            f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 "
            "-c max_connections=60 -c shared_buffers=16MB"
        )
        result = self._run(
            "pg_ctl", "-D", str(self.data), "-l", str(self.log), "-o", options, "-w", "-t", "60",
            "start", check=False,
        )  # fmt: skip
        if result.returncode != 0:
            raise RuntimeError(f"pg_ctl start failed: {result.stderr}{self.log_tail()}")
        return self

    def running(self) -> bool:
        return self._run("pg_ctl", "-D", str(self.data), "status", check=False).returncode == 0

    def stop(self, mode: str = "fast") -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "stop", check=False)

    def cleanup(self) -> None:
        self.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)

    def log_tail(self) -> str:
        return self.log.read_text(errors="replace")[-2000:] if self.log.exists() else ""

    @property
    def base_url(self) -> str:
        return f"postgresql://{USER}@127.0.0.1:{self.port}/postgres"

    def new_schema(self) -> str:
        """A fresh schema; returns the URL whose connections use it."""
        import psycopg

        name = f"t_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(self.base_url, autocommit=True) as conn:
            conn.execute(f"CREATE SCHEMA {name}")
        return f"{self.base_url}?options=-csearch_path%3D{name}"
