"""Real `mlflow server`s on 127.0.0.1 for the tests that need one: plain, or with MLflow's
basic-auth app (logins and permissions). Each has its own SQLite store and artifact root, and
its process group is stopped when the test ends, passed or not."""

from __future__ import annotations

import base64
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

ADMIN = ("admin", "admin-password-for-tests")


@dataclass(frozen=True)
class Server:
    url: str
    artifacts: Path  # where the server stores what clients log (proxied)

    def as_admin(self, endpoint: str, body: dict) -> dict:
        """POST `body` to the server's REST `endpoint` with the admin's login (users, permissions)."""
        login = base64.b64encode(":".join(ADMIN).encode()).decode()
        request = urllib.request.Request(f"{self.url}{endpoint}", json.dumps(body).encode(),
                                         {"Content-Type": "application/json", "Authorization": f"Basic {login}"})
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.load(response)

    def add_user(self, username: str, password: str) -> None:
        self.as_admin("/api/2.0/mlflow/users/create", {"username": username, "password": password})


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def mlflow_server(root: Path, logins: bool = False) -> Iterator[Server]:
    """An `mlflow server` storing under `root`; with `logins`, MLflow's basic-auth app with the
    admin `ADMIN` and READ as every other user's default permission."""
    root.mkdir(parents=True)
    port = free_port()
    command = [str(Path(sys.executable).with_name("mlflow")), "server", "--host", "127.0.0.1", "--port", str(port),
               "--workers", "1", "--backend-store-uri", f"sqlite:///{root / 'mlflow.db'}",
               "--artifacts-destination", str(root / "artifacts")]
    env = dict(os.environ)
    if logins:
        config = root / "basic_auth.ini"
        config.write_text(
            "[mlflow]\ndefault_permission = READ\n"
            f"database_uri = sqlite:///{root / 'basic_auth.db'}\n"
            f"admin_username = {ADMIN[0]}\nadmin_password = {ADMIN[1]}\n"
            "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n"
            "auth_cache_ttl_seconds = 60\n")  # a password's hash checked once a minute, not on every request
        command += ["--app-name", "basic-auth"]
        env |= {"MLFLOW_AUTH_CONFIG_PATH": str(config), "MLFLOW_FLASK_SERVER_SECRET_KEY": "csrf-key-for-tests"}
    proc = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_healthy(url, proc)
        yield Server(url, root / "artifacts")
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=30)


def wait_until_healthy(url: str, proc: subprocess.Popen, seconds: float = 90) -> None:
    deadline = time.time() + seconds
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"mlflow server exited with {proc.returncode} before answering")
        try:
            if urllib.request.urlopen(f"{url}/health", timeout=2).status == 200:
                return
        except OSError:
            time.sleep(0.5)
    raise RuntimeError(f"mlflow server did not answer {url}/health within {seconds:.0f} s")
