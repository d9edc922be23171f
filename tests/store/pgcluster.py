"""A private PostgreSQL cluster for one test: ``initdb`` into a temporary directory, served on a
free loopback port with trust authentication, that the test can really stop and start again.
The shared server on 5432 is never touched.

The binaries come from ``/usr/lib/postgresql/<version>/bin`` (the newest). PostgreSQL refuses to
run as root, so as root the cluster is created and run as the ``postgres`` OS user, in a
directory that user owns.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from outlast.serving import free_port

BINARIES = Path("/usr/lib/postgresql")


def find_binaries() -> Path | None:
    """The newest installed PostgreSQL's ``bin`` directory holding ``initdb`` and ``pg_ctl``."""
    found = [p for p in BINARIES.glob("*/bin") if (p / "initdb").is_file() and (p / "pg_ctl").is_file()]
    return max(found, key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0, default=None)


class PrivateCluster:
    """``with PrivateCluster(bin_dir) as pg: pg.url; pg.stop(); pg.start()``."""

    def __init__(self, bin_dir: Path) -> None:
        self.bin = bin_dir
        self.port = free_port()
        self.root = Path(tempfile.mkdtemp(prefix="outlast-pg-"))
        self.data = self.root / "data"
        self.log = self.root / "postgres.log"
        self._as: dict[str, Any] = {}
        if os.geteuid() == 0:
            try:
                user = pwd.getpwnam("postgres")
            except KeyError as error:
                raise RuntimeError("running as root and there is no 'postgres' OS user to run PostgreSQL as") \
                    from error
            os.chown(self.root, user.pw_uid, user.pw_gid)
            self._as = {"user": user.pw_uid, "group": user.pw_gid, "extra_groups": [],
                        "env": {**os.environ, "HOME": str(self.root), "USER": "postgres"}}
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"
        self.running = False

    def _run(self, *argv: str) -> None:
        done = subprocess.run([str(self.bin / argv[0]), *argv[1:]], capture_output=True, text=True, cwd=self.root,
                              check=False, **self._as)
        if done.returncode != 0:
            log = self.log.read_text(errors="replace")[-2000:] if self.log.exists() else ""
            raise RuntimeError(f"{argv[0]} failed ({done.returncode}): {done.stderr.strip()[-2000:]}\n{log}")

    def init(self) -> PrivateCluster:
        self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres", "-E", "UTF8", "--locale=C",
                  "--no-sync")
        return self

    def start(self) -> None:
        options = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1"
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-o", options, "-w", "-t", "60", "start")
        self.running = True

    def stop(self, mode: str = "fast") -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "-t", "60", "stop")
        self.running = False

    def __enter__(self) -> PrivateCluster:
        try:
            self.init().start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self.running or (self.data / "postmaster.pid").exists():
            with contextlib.suppress(RuntimeError):
                self.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)
