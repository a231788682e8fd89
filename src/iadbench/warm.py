"""The ``iadbench`` command's entry point, with a warm worker that spares each stage its ~8 s of imports.

A `dvc repro` of the default configuration starts ~70 ``iadbench`` processes; each train or predict process spends
7–9 s importing torch, Lightning and anomalib before it does a second of work (``benchmarks/repro_speed.py``
measures it). This module keeps one interpreter with those libraries imported (the *worker*) and runs each command
in a ``fork()`` of it, so a command starts in milliseconds and runs exactly the code a fresh process would run:

- **Client** (:func:`main`, the console script): computes the worker key (below), connects to the worker's Unix
  socket, hands over its own stdin/stdout/stderr (file descriptors, ``SCM_RIGHTS``), argv, working directory, umask
  and environment, forwards SIGINT/SIGTERM/SIGHUP, and exits with the command's status. When no worker answers it
  runs the command itself, as a plain process would, and starts a worker in the background for the next command.
- **Worker** (:func:`serve`): imports every verb's libraries once, then forks one child per command; the child
  takes the client's descriptors, directory, umask and environment and runs :func:`iadbench.cli.main`. It exits
  after ``IADBENCH_WARM_IDLE`` seconds (default 300) without a command.
- **Key**: a worker serves only commands whose process would be identical: the same interpreter and version, the
  same ``iadbench`` source files (content), the same installed distributions (their ``dist-info`` names carry the
  versions) and the same environment except the variables DVC sets per stage (``DVC_*``), DVC's queue worker sets
  (``CELERY_*``, ``_MP_FORK_*``), git's (``GIT_*``) and the shell's bookkeeping (``PWD``, ``OLDPWD``, ``SHLVL``,
  ``_``) — environment variables that take effect when a process or
  library starts (``MALLOC_*``, ``OMP_NUM_THREADS``, ``HF_HUB_OFFLINE``) are therefore honoured: another value is
  another worker. A code or environment change makes a new key; the old worker idles out.

What differs from a fresh process, and only that: the peak-memory figure of a stage (``ru_maxrss``) starts from
the worker's resident size at the fork instead of the import peak (the stage's resources record says
``"process": "warm"``, else ``"fresh"``); Python warnings raised while *importing* the libraries go to the worker's log
(``<socket dir>/<key>.log``) instead of the command's stderr; the variables libraries set in ``os.environ`` when
imported (torch, OpenCV, tokenizers: ``KMP_DUPLICATE_LIB_OK``, ``LD_LIBRARY_PATH``...) are set for every verb, as
for a process that imported every verb's libraries. Outputs are byte-identical (the e2e test
``test_clean_rebuild_is_byte_identical`` forces the cells' train and predict again in fresh processes after a warm
build; ``benchmarks/repro_speed.py`` compares the hashes of whole cold and warm builds).

Only Linux (``socket.send_fds`` and ``fork`` after the imports: the preloaded libraries start no thread that a fork
would orphan except OpenBLAS's pools, which OpenBLAS shuts down and restarts around ``fork`` itself).
``IADBENCH_WARM=0`` turns the worker off; ``python -m iadbench.warm stop`` stops this user's workers.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import signal
import socket
import struct
import sys
import tempfile
import time
from pathlib import Path

# DVC sets DVC_* per stage and experiment; DVC's queue worker (Celery on billiard) adds CELERY_* and _MP_FORK_* to the
# environment of every queued experiment; git reads GIT_* when it runs. None takes effect when a process or library
# starts, and the forked command runs with the client's own environment: without these, every queued experiment
# started two fresh workers (~8 s of imports each) instead of reusing the workspace's.
KEY_SKIP_PREFIXES = ("DVC_", "CELERY_", "_MP_FORK_", "GIT_")
KEY_SKIP_NAMES = frozenset({"PWD", "OLDPWD", "SHLVL", "_"})
IDLE_SECONDS = 300.0
FORWARDED_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
SERVE_CODE = "import sys; from iadbench.warm import serve; sys.exit(serve(sys.argv[1], sys.argv[2]))"
HEADER = struct.Struct("!Q")
STATUS = struct.Struct("!i")
PACKAGE_DIR = Path(__file__).resolve().parent
IN_WORKER = False  # True in a command forked from a worker (resources.host() records it)
IMPORT_ENV: dict[str, str] = {}  # variables the libraries set while the worker imported them (a fresh process has them)


def enabled(environ: dict[str, str] | None = None) -> bool:
    """Whether commands may go through a warm worker (Linux, and ``IADBENCH_WARM`` not 0/off/false/no)."""
    environ = os.environ if environ is None else environ
    off = environ.get("IADBENCH_WARM", "1").strip().lower() in {"0", "off", "false", "no"}
    return not off and sys.platform == "linux" and hasattr(socket, "send_fds")


def key(environ: dict[str, str] | None = None) -> str:
    """The worker key: interpreter, ``iadbench`` sources, installed distributions and start-up environment."""
    environ = os.environ if environ is None else environ
    digest = hashlib.sha256()
    digest.update(f"{sys.executable}\0{sys.version}\0{PACKAGE_DIR}\0".encode())
    for path in sorted(PACKAGE_DIR.rglob("*.py")):
        digest.update(path.relative_to(PACKAGE_DIR).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    for entry in sys.path:
        if entry.endswith("-packages") and os.path.isdir(entry):
            digest.update(f"{entry}\0".encode())
            digest.update("\0".join(sorted(n for n in os.listdir(entry) if n.endswith("-info"))).encode())
    for name in sorted(environ):
        if name not in KEY_SKIP_NAMES and not name.startswith(KEY_SKIP_PREFIXES):
            digest.update(f"{name}={environ[name]}\0".encode())
    return digest.hexdigest()[:24]


def socket_dir() -> Path:
    """The private folder of this user.s worker sockets (mode 700), under ``$XDG_RUNTIME_DIR`` or the temp folder."""
    base = os.environ.get("XDG_RUNTIME_DIR") or tempfile.gettempdir()
    folder = Path(base) / f"iadbench-warm-{os.getuid()}"
    folder.mkdir(mode=0o700, exist_ok=True)
    info = folder.stat()
    if info.st_uid != os.getuid() or info.st_mode & 0o077:
        raise PermissionError(f"{folder}: not private to this user (owner and mode 700 required)")
    return folder


def _recv_exact(conn: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = conn.recv(n - len(data))
        if not chunk:
            raise ConnectionError("connection closed")
        data += chunk
    return data


# ---------------------------------------------------------------------------------------------------- client


def run_warm(argv: list[str]) -> int | None:
    """Run ``iadbench argv`` in the warm worker; its exit status, or None when no worker took it (run it here)."""
    if not enabled():
        return None
    try:
        folder = socket_dir()
        worker_key = key()
    except OSError:
        return None
    path = folder / f"{worker_key}.sock"
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        conn.connect(str(path))
        request = json.dumps({"argv": argv, "cwd": os.getcwd(), "umask": _umask(), "env": dict(os.environ),
                              "path0": sys.path[0] if sys.path else ""}).encode()  # fmt: skip
        socket.send_fds(conn, [HEADER.pack(len(request))], [0, 1, 2])
        conn.sendall(request)
    except OSError:
        conn.close()
        _start_worker(path, worker_key)
        return None
    return _wait(conn)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _wait(conn: socket.socket) -> int:
    """Forward signals to the command until it sends its exit status."""

    def forward(signum, _frame):
        with contextlib.suppress(OSError):
            conn.sendall(bytes([signum]))

    previous = {sig: signal.signal(sig, forward) for sig in FORWARDED_SIGNALS}
    try:
        while True:
            try:
                return STATUS.unpack(_recv_exact(conn, STATUS.size))[0]
            except InterruptedError:
                continue
            except ConnectionError:
                print("iadbench: the warm worker's command ended without an exit status (killed?)", file=sys.stderr)
                return 1
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        conn.close()


def _start_worker(path: Path, worker_key: str) -> None:
    """A detached worker for ``path`` (it exits at once if another one holds the key's lock)."""
    import subprocess

    log = path.with_suffix(".log")
    with open(log, "ab") as out:
        subprocess.Popen(
            [sys.executable, "-c", SERVE_CODE, str(path), worker_key],
            stdin=subprocess.DEVNULL, stdout=out, stderr=out, cwd="/", start_new_session=True, close_fds=True,
        )  # fmt: skip


def main() -> int:
    """The ``iadbench`` console script: through the warm worker when one answers, else in this process."""
    status = run_warm(sys.argv[1:])
    if status is not None:
        return status
    from iadbench.cli import main as cli_main

    return cli_main()


# ---------------------------------------------------------------------------------------------------- worker


def preload() -> None:
    """Import what every verb imports (each :mod:`iadbench.stages` module's ``IMPORTS``): what a fork then skips."""
    import importlib

    import iadbench.cli  # noqa: F401 - the parser and every verb's module
    from iadbench import stages

    for modules in stages.imports().values():
        for module in modules:
            importlib.import_module(module)


def serve(path: str | Path, worker_key: str, idle: float | None = None) -> int:
    """Serve commands on the socket ``path`` until ``idle`` seconds pass without one (0: the key's worker runs)."""
    import fcntl
    import select

    path = Path(path)
    idle = float(os.environ.get("IADBENCH_WARM_IDLE", IDLE_SECONDS)) if idle is None else idle
    lock = open(path.with_suffix(".lock"), "w")  # noqa: SIM115 - held for the worker's lifetime
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return 0  # another worker serves this key
    before = dict(os.environ)
    preload()
    IMPORT_ENV.update({name: value for name, value in os.environ.items() if before.get(name) != value})
    if key(before) != worker_key:
        print(f"{time.ctime()}: the sources or environment changed while preloading; not serving", flush=True)
        return 0
    path.unlink(missing_ok=True)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(path))
    os.chmod(path, 0o600)
    listener.listen(64)
    print(f"{time.ctime()}: worker {os.getpid()} serving {path}", flush=True)
    children: set[int] = set()
    last = time.monotonic()
    try:
        while True:
            for pid in list(children):
                if os.waitpid(pid, os.WNOHANG)[0]:
                    children.discard(pid)
                    last = time.monotonic()
            if not select.select([listener], [], [], 1.0)[0]:
                if not children and time.monotonic() - last > idle:
                    return 0
                if not path.exists():  # `stop` removed the socket
                    return 0
                continue
            conn, _ = listener.accept()
            pid = os.fork()
            if pid == 0:
                listener.close()
                lock.close()
                _child(conn)  # never returns
            conn.close()
            children.add(pid)
            last = time.monotonic()
    finally:
        listener.close()
        path.unlink(missing_ok=True)  # the key's lock is held: no other worker owns this path


def _child(conn: socket.socket) -> None:
    """Become the client's command: its descriptors, directory, umask, environment and argv; then run it."""
    import io
    import threading

    status = 1
    try:
        header, fds, _flags, _addr = socket.recv_fds(conn, HEADER.size, 3)
        request = json.loads(_recv_exact(conn, HEADER.unpack(header)[0]))
        print(
            f"{time.ctime()}: command {os.getpid()}: iadbench {' '.join(request['argv'])} in {request['cwd']}",
            flush=True,
        )  # fmt: skip (the worker's log, before the client's descriptors replace it)
        for target, fd in zip((0, 1, 2), fds, strict=True):
            os.dup2(fd, target)
            os.close(fd)
        encoding, errors = sys.stdout.encoding, sys.stdout.errors
        sys.stdin = sys.__stdin__ = io.TextIOWrapper(io.BufferedReader(io.FileIO(0, "r", closefd=False)),
                                                     encoding=encoding, errors=errors)  # fmt: skip
        sys.stdout = sys.__stdout__ = io.TextIOWrapper(io.BufferedWriter(io.FileIO(1, "w", closefd=False)),
                                                       encoding=encoding, errors=errors,
                                                       line_buffering=os.isatty(1))  # fmt: skip
        sys.stderr = sys.__stderr__ = io.TextIOWrapper(io.BufferedWriter(io.FileIO(2, "w", closefd=False)),
                                                       encoding=encoding, errors="backslashreplace",
                                                       line_buffering=True)  # fmt: skip
        os.chdir(request["cwd"])
        os.umask(request["umask"])
        os.environ.clear()
        os.environ.update(request["env"])
        os.environ.update(IMPORT_ENV)
        global IN_WORKER
        IN_WORKER = True
        if sys.path and request["path0"]:
            sys.path[0] = request["path0"]
        sys.argv = ["iadbench", *request["argv"]]
        signal.signal(signal.SIGINT, signal.default_int_handler)
        for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGCHLD):
            signal.signal(sig, signal.SIG_DFL)
        threading.Thread(target=_watch, args=(conn,), daemon=True).start()
        from iadbench.cli import main as cli_main

        try:
            status = cli_main(request["argv"])
        except SystemExit as exc:
            status = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
            if exc.code is not None and not isinstance(exc.code, int):
                print(exc.code, file=sys.stderr)
    except KeyboardInterrupt:
        status = 130
    except BaseException:  # noqa: BLE001 - a fresh process would print the traceback and exit 1
        import traceback

        traceback.print_exc()
        status = 1
    finally:
        import atexit

        atexit._run_exitfuncs()  # what a fresh interpreter runs at exit (log handlers, temp folders)
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(OSError, ValueError):
                stream.flush()
        with contextlib.suppress(OSError):
            conn.sendall(STATUS.pack(status))
        os._exit(status & 0xFF if status >= 0 else 1)


def _watch(conn: socket.socket) -> None:
    """Deliver the client's forwarded signals to this command; a vanished client ends it (SIGTERM)."""
    while True:
        try:
            data = conn.recv(1)
        except OSError:
            data = b""
        if not data:
            os.kill(os.getpid(), signal.SIGTERM)
            return
        os.kill(os.getpid(), data[0])


def stop(folder: Path | None = None) -> int:
    """Stop the workers of ``folder`` (default: this user's socket folder); each ends within a second of its socket
    being removed. How many there were.
    """
    folder = socket_dir() if folder is None else folder
    sockets = list(folder.glob("*.sock"))
    for path in sockets:
        path.unlink(missing_ok=True)
    return len(sockets)


if __name__ == "__main__":
    if sys.argv[1:] == ["stop"]:
        print(f"stopped {stop()} iadbench warm worker(s)")
    else:
        sys.exit("usage: python -m iadbench.warm stop")
