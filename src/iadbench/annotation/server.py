"""A local Label Studio server for annotators, in its own environment.

The server pins versions that conflict with the project's (Django stack, its own SDK pins), so it lives in
``annotation/.label-studio/venv``, created on first use from ``annotation/requirements-server.lock``. Its data
(SQLite database, uploads) stays in ``annotation/.label-studio/data`` (git-ignored). It binds 127.0.0.1 by default,
serves the repository's images through local-file storage, and runs with telemetry, error reporting to Sentry, the
latest-version check and self sign-up switched off. The first user's e-mail, password and API token come from
``LABEL_STUDIO_USERNAME``, ``LABEL_STUDIO_PASSWORD`` and ``LABEL_STUDIO_API_KEY`` and reach the server through its
environment only (Label Studio's ``start`` reads ``LABEL_STUDIO_USERNAME``, ``LABEL_STUDIO_PASSWORD`` and
``LABEL_STUDIO_USER_TOKEN``): a command line is readable by every user of the machine (``ps``), an environment only
by the process's owner.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import urllib.request
import venv
from pathlib import Path
from typing import Any

from iadbench.errors import IadbenchError

HOME = Path("annotation/.label-studio")
VENV = HOME / "venv"
DATA = HOME / "data"
LOCK = Path("annotation/requirements-server.lock")
CREDENTIAL_ENV = ("LABEL_STUDIO_USERNAME", "LABEL_STUDIO_PASSWORD", "LABEL_STUDIO_API_KEY")


def server_binary(venv_dir: Path = VENV) -> Path:
    """The ``label-studio`` executable of the server environment."""
    return venv_dir / ("Scripts" if os.name == "nt" else "bin") / "label-studio"


def ensure_environment(venv_dir: Path = VENV, lock: Path = LOCK) -> Path:
    """Create the server's virtual environment from the lock file unless it is already there."""
    binary = server_binary(venv_dir)
    if binary.is_file():
        return binary
    if not lock.is_file():
        raise IadbenchError(f"{lock}: server lock file not found (run from the repository root)")
    print(f"creating the Label Studio server environment in {venv_dir} (first use only, a few minutes)...", flush=True)
    python = venv_dir / ("Scripts" if os.name == "nt" else "bin") / "python"
    uv = shutil.which("uv", path=str(Path(sys.executable).parent))  # `make env` installs it beside this interpreter
    proc = None
    if uv:  # faster than pip for this environment's ~150 packages (a fresh CI machine creates it every run);
        # --compile-bytecode as pip does (without .pyc every server start compiles Django & co. again)
        venv.EnvBuilder(with_pip=False, clear=True).create(venv_dir)
        install = [uv, "pip", "install", "--native-tls", "--compile-bytecode", "-q", "--python", str(python)]
        proc = subprocess.run([*install, "-r", str(lock)], capture_output=True, text=True)
    if proc is None or proc.returncode != 0:  # no uv, or uv could not reach the index (pip reads pip.conf)
        venv.EnvBuilder(with_pip=True, clear=True).create(venv_dir)
        proc = subprocess.run([str(python), "-m", "pip", "install", "--disable-pip-version-check", "-q", "-r",
                               str(lock)], capture_output=True, text=True)  # fmt: skip
    if proc.returncode != 0 or not binary.is_file():
        raise IadbenchError(f"installing Label Studio from {lock} failed:\n{proc.stderr.strip()[-2000:]}")
    return binary


def server_env(
    document_root: Path,
    data_dir: Path = DATA,
    token: str | None = None,
    user: str | None = None,
    password: str | None = None,
) -> dict[str, str]:
    """Environment of the server process: data dir, local files, no telemetry, and the first user's credentials
    (never on the command line).
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
    env.update(
        LABEL_STUDIO_BASE_DATA_DIR=str(data_dir.resolve()),
        LOCAL_FILES_SERVING_ENABLED="true",
        LOCAL_FILES_DOCUMENT_ROOT=str(document_root.resolve()),
        COLLECT_ANALYTICS="false",
        SENTRY_DSN="",
        FRONTEND_SENTRY_DSN="",
        LATEST_VERSION_CHECK="false",
        LABEL_STUDIO_DISABLE_SIGNUP_WITHOUT_LINK="true",
        LABEL_STUDIO_ENABLE_LEGACY_API_TOKEN="true",
        DJANGO_DB="sqlite",
    )
    if token:
        env["LABEL_STUDIO_USER_TOKEN"] = token
    if user:
        env["LABEL_STUDIO_USERNAME"] = user
    if password:
        env["LABEL_STUDIO_PASSWORD"] = password
    return env


def server_command(binary: Path, host: str, port: int) -> list[str]:
    """``label-studio start`` bound to ``host:port``, no browser, legacy API tokens (what the SDK sends) on."""
    return [str(binary), "start", "--no-browser", "--internal-host", host, "--port", str(port), "--host",
            f"http://{host}:{port}", "--enable-legacy-api-token"]  # fmt: skip


def credentials() -> tuple[str, str, str | None]:
    """The first user's e-mail, password (≥ 8 characters) and optional API token, from the environment."""
    user, password, token = (os.environ.get(k) for k in CREDENTIAL_ENV)
    if not user or not password:
        raise IadbenchError(
            "set LABEL_STUDIO_USERNAME (an e-mail) and LABEL_STUDIO_PASSWORD (8+ characters) for the first user, "
            "and optionally LABEL_STUDIO_API_KEY (40 hex characters) as its API token; they are never written "
            "to the repository"
        )
    if len(password) < 8:
        raise IadbenchError("LABEL_STUDIO_PASSWORD must have at least 8 characters")
    return user, password, token


def start(
    host: str,
    port: int,
    data_dir: Path = DATA,
    document_root: Path = Path("."),
    binary: Path | None = None,
    **popen: Any,
) -> subprocess.Popen:
    """Start the server (creating its environment first if needed); returns the running process. Credentials go
    through the environment; the command line holds none (``popen``: extra ``subprocess.Popen`` arguments).
    """
    user, password, token = credentials()
    binary = binary or ensure_environment()
    data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    private(data_dir)
    env = server_env(document_root, data_dir, token, user, password)
    # umask 077: the SQLite database Label Studio creates holds the API token, so only its owner may read it (600)
    return subprocess.Popen(server_command(binary, host, port), env=env, umask=0o077, **popen)


def private(data_dir: Path) -> None:
    """Owner-only permissions on the server's data folder and every file already in it (a database written by an
    earlier version of this code, world-readable, holds the API token).
    """
    data_dir.chmod(0o700)
    for path in data_dir.rglob("*"):
        path.chmod(0o700 if path.is_dir() else 0o600)


def wait_until_up(url: str, timeout: float = 300, process: subprocess.Popen | None = None) -> None:
    """Poll ``url/health`` until it answers 200; a clear error if the process dies or time runs out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise IadbenchError(f"Label Studio exited with code {process.returncode} before answering at {url}")
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=5) as response:  # noqa: S310 - local URL
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(2)
    raise IadbenchError(f"Label Studio did not answer at {url}/health within {timeout:.0f} s")


def serve(host: str = "127.0.0.1", port: int = 8080) -> int:
    """Run the server in the foreground until Ctrl-C; print where to log in."""
    process = start(host, port)
    url = f"http://{host}:{port}"
    try:
        wait_until_up(url, process=process)
        user = os.environ["LABEL_STUDIO_USERNAME"]
        print(f"\nLabel Studio is up: {url}  (log in as {user} with LABEL_STUDIO_PASSWORD)", flush=True)
        print(f"next: iadbench annotate push --dataset NAME   (LABEL_STUDIO_URL={url}, LABEL_STUDIO_API_KEY set)")
        print("stop with Ctrl-C", flush=True)
        return process.wait()
    except KeyboardInterrupt:
        process.terminate()
        return process.wait()
    finally:
        if process.poll() is None:
            process.terminate()
            process.wait(timeout=30)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(serve())
