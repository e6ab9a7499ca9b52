"""A Label Studio server of the tests' own (own port, own data dir) that a test may stop and restart,
and `create_personal_access_token`, which gets a PAT the way a user does: sign up, log in, ask.
"""

from __future__ import annotations

import os
import socket
import sqlite3
import subprocess
import time
import uuid
from pathlib import Path

import httpx

from tests.support.processes import end_process_group

# The server environment `make install-labelstudio-server` builds (scripts/services.sh uses it too).
LABEL_STUDIO_BIN = (
    Path(__file__).resolve().parents[3] / ".venv-labelstudio" / "bin" / "label-studio"
)
LEGACY_TOKEN = "fedcba9876543210fedcba9876543210fedcba98"
_DATABASE = "label_studio.sqlite3"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class LabelStudioServer:
    """`start()` launches the server and returns at once; `wait_ready()` polls /health.

    A fresh database is migrated on the first start (a minute or more on a busy machine); with
    `seed` (another server's data dir and legacy token) the server starts from a consistent copy
    of that database instead, as fast as a restart. The port stays the same across restarts.
    """

    def __init__(self, data_dir: Path, seed: tuple[Path, str] | None = None) -> None:
        self.data_dir = data_dir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.legacy_token = LEGACY_TOKEN if seed is None else seed[1]
        self._seed_database = None if seed is None else seed[0] / _DATABASE
        self._process: subprocess.Popen[bytes] | None = None
        self._starts = 0

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self) -> None:
        if not LABEL_STUDIO_BIN.exists():
            raise RuntimeError(
                f"{LABEL_STUDIO_BIN} is missing: run `make install-labelstudio-server` first"
            )
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if self._starts == 0 and self._seed_database is not None:
            _copy_database(self._seed_database, self.data_dir / _DATABASE)
        self._starts += 1
        env = {
            **os.environ,
            "LABEL_STUDIO_BASE_DATA_DIR": str(self.data_dir),
            "LABEL_STUDIO_ENABLE_LEGACY_API_TOKEN": "true",
            "LATEST_VERSION_CHECK": "false",
        }
        if self._seed_database is None:
            # A fresh database gets its admin user (and legacy token) on the first start.
            env["LABEL_STUDIO_USERNAME"] = "restartable@example.com"
            env["LABEL_STUDIO_PASSWORD"] = "restartable-password"
            env["LABEL_STUDIO_USER_TOKEN"] = self.legacy_token
        log = (self.data_dir / f"server-{self._starts}.log").open("wb")
        # A session of its own, so that stop() reaches Django's autoreloader child as well.
        self._process = subprocess.Popen(
            [
                str(LABEL_STUDIO_BIN),
                "start",
                "--no-browser",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--data-dir",
                str(self.data_dir),
            ],
            cwd=self.data_dir,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()

    def wait_ready(self, timeout: float = 240.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process is None or self._process.poll() is not None:
                raise RuntimeError(f"Label Studio exited early; see {self.data_dir}/server-*.log")
            try:
                if httpx.get(f"{self.url}/health", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.25)
        raise RuntimeError(f"Label Studio at {self.url} not ready within {timeout:.0f}s")

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        end_process_group(process)


def _copy_database(source: Path, target: Path) -> None:
    """A consistent snapshot of a database another server is using (SQLite's online backup)."""
    reader = sqlite3.connect(f"file:{source}?mode=ro", uri=True)
    writer = sqlite3.connect(target)
    try:
        reader.backup(writer)
    finally:
        writer.close()
        reader.close()


def create_personal_access_token(url: str, legacy_token: str) -> str:
    """Sign up a fresh user through the organization's invite link, log in, create its PAT.

    A user may hold only one PAT at a time and the server never shows it again, so every test
    session gets a new user rather than reusing the admin's.
    """
    invite = httpx.get(f"{url}/api/invite", headers={"Authorization": f"Token {legacy_token}"})
    invite.raise_for_status()
    invite_token = invite.json()["token"]
    with httpx.Client(base_url=url, timeout=30) as browser:
        browser.get("/user/signup/", params={"token": invite_token}).raise_for_status()
        signup = browser.post(
            "/user/signup/",
            params={"token": invite_token},
            data={
                "email": f"reviewer-{uuid.uuid4().hex[:12]}@example.com",
                "password": "reviewer-password-123",
                "csrfmiddlewaretoken": browser.cookies["csrftoken"],
            },
        )
        if signup.status_code != 302 or "sessionid" not in browser.cookies:
            raise RuntimeError(f"signing up a test user failed: HTTP {signup.status_code}")
        created = browser.post("/api/token/", headers={"X-CSRFToken": browser.cookies["csrftoken"]})
        created.raise_for_status()
        return str(created.json()["token"])
