"""UpTrain's own local dashboard server (`uptrain.dashboard.backend.app`, shipped in the uptrain
package) on a loopback port, with its data in a directory of the test's, and a reader that counts
what it holds as its dashboard shows it: projects, their evaluation runs and the rows of each.

The server is uptrain's, unchanged but for where it keeps its files: the module hard-codes
/data/uptrain_data/ and creates it at import, so the launcher points its directory helpers and
its database at the test's directory before importing it.

python -m tests.support.uptrain_dashboard DATA_DIR PORT   (what `UpTrainDashboard` runs)
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self

import httpx

ROOT = Path(__file__).resolve().parents[2]
# The open-source dashboard's one user, and the header uptrain's EvalLLM sends (evalllm.py).
ACCESS_HEADERS = {"uptrain-access-token": "default_key"}
_START_S = 120.0


@dataclass(frozen=True, slots=True)
class DashboardRun:
    """One evaluation run as the dashboard lists it, with its rows."""

    project: str
    name: str
    rows: tuple[dict[str, Any], ...]


class UpTrainDashboard:
    """`with UpTrainDashboard(tmp_path) as dashboard:` then `UPTRAIN_LOCAL_URL=dashboard.url`."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port: int = sock.getsockname()[1]
        self._process: subprocess.Popen[bytes] | None = None
        self._log = data_dir / "dashboard.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> Self:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        with self._log.open("wb") as log:
            self._process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "tests.support.uptrain_dashboard",
                    str(self.data_dir),
                    str(self.port),
                ],
                cwd=ROOT,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + _START_S
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                break
            try:
                httpx.post(f"{self.url}/api/public/user", headers=ACCESS_HEADERS, timeout=2)
                return self
            except httpx.TransportError:
                time.sleep(0.2)
        self.__exit__(None, None, None)
        raise RuntimeError(f"the UpTrain dashboard did not start: {self._log.read_text()[-3000:]}")

    def __exit__(self, *exc_info: object) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()

    def runs(self) -> list[DashboardRun]:
        """Every evaluation run of every project, oldest first, with its rows."""
        found: list[DashboardRun] = []
        with httpx.Client(base_url=f"{self.url}/api/public", headers=ACCESS_HEADERS) as client:
            projects = client.get("/projects", params={"num": 1000}).raise_for_status().json()
            for project in projects:
                runs = client.get(
                    "/project_runs", params={"project_id": project["project_id"], "num": 10_000}
                ).raise_for_status()
                for run in sorted(runs.json(), key=lambda r: r["created_at"]):
                    data = client.get("/get_data", params={"evaluation_id": run["evaluation_id"]})
                    rows = data.raise_for_status().json()["data"][0]
                    found.append(
                        DashboardRun(project["project_name"], run["evaluation_name"], tuple(rows))
                    )
        return found

    def rows(self) -> list[tuple[str, dict[str, Any]]]:
        """Every row the dashboard holds, with its project's name."""
        return [(run.project, row) for run in self.runs() for row in run.rows]


def _serve(data_dir: str, port: int) -> None:
    import uptrain.utilities.db as uptrain_db
    import uptrain.utilities.utils as uptrain_utils
    import uvicorn

    create_dirs, create_database = uptrain_utils.create_dirs, uptrain_db.create_database
    directory = os.path.join(data_dir, "")
    uptrain_utils.create_dirs = lambda _path: create_dirs(directory)  # type: ignore[assignment]
    uptrain_db.create_database = lambda _url: create_database(  # type: ignore[assignment]
        f"sqlite:///{directory}uptrain-local-server.db"
    )
    from uptrain.dashboard.backend import app as dashboard

    dashboard.DATABASE_PATH = directory
    uvicorn.run(dashboard.app, host="127.0.0.1", port=port, log_level="warning")


if __name__ == "__main__":
    _serve(sys.argv[1], int(sys.argv[2]))
