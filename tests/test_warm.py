"""The warm worker (``iadbench.warm``): a command forked from it prints, exits and writes what a fresh process does,
and a worker serves only commands whose sources, packages and start-up environment are its own."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from iadbench import warm
from tests.conftest import TINY

CONSOLE = Path(sys.executable).parent / "iadbench"


def _env(runtime: Path, **extra: str) -> dict[str, str]:
    return {**os.environ, "XDG_RUNTIME_DIR": str(runtime), "IADBENCH_WARM_IDLE": "60", **extra}


def _iadbench(args: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([str(CONSOLE), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def worker(tmp_path_factory):
    """A worker for this module's environment (a private socket folder), started as the console script starts one;
    stopped afterwards."""
    runtime = tmp_path_factory.mktemp("runtime")
    env = _env(runtime)
    folder = runtime / f"iadbench-warm-{os.getuid()}"
    folder.mkdir(mode=0o700)
    probe = [sys.executable, "-c", "from iadbench.warm import key; print(key())"]  # the key in that environment
    worker_key = subprocess.run(probe, env=env, capture_output=True, text=True, check=True).stdout.strip()
    path = folder / f"{worker_key}.sock"
    proc = subprocess.Popen([sys.executable, "-c", warm.SERVE_CODE, str(path), worker_key], env=env, cwd="/",
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)  # fmt: skip
    deadline = time.monotonic() + 240
    while not path.exists():
        assert proc.poll() is None, proc.stdout.read().decode()[-3000:]
        assert time.monotonic() < deadline, "the worker did not listen within 240 s"
        time.sleep(0.2)
    yield env, proc
    path.unlink(missing_ok=True)  # what `python -m iadbench.warm stop` does: the worker exits within a second
    proc.wait(timeout=30)


def test_a_command_from_the_worker_prints_exits_and_writes_as_a_fresh_process(worker, tmp_path):
    env, proc = worker
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "params.yaml").write_text(yaml.safe_dump(TINY, sort_keys=False))
    fresh = _iadbench(["check"], repo, {**env, "IADBENCH_WARM": "0"})
    fresh_file = (repo / "reports/gates/params.json").read_bytes()
    (repo / "reports/gates/params.json").unlink()
    warm_run = _iadbench(["check"], repo, env)
    assert (warm_run.returncode, warm_run.stdout, warm_run.stderr) == (fresh.returncode, fresh.stdout, fresh.stderr)
    assert warm_run.returncode == 0 and "every section, key and model option checked" in warm_run.stdout
    assert (repo / "reports/gates/params.json").read_bytes() == fresh_file  # written in the client's directory
    out = _iadbench(["--params", "from-env.yaml", "check"], repo, {**env, "DVC_STAGE": "check"})  # not in the key
    assert out.returncode == 2 and "from-env.yaml: params file not found" in out.stderr
    (repo / "params.yaml").write_text("split: {seed: 0, val_fraction: 1}\n")  # a user error: exit 2, one line
    fresh, warm_run = _iadbench(["split"], repo, {**env, "IADBENCH_WARM": "0"}), _iadbench(["split"], repo, env)
    assert (warm_run.returncode, warm_run.stdout, warm_run.stderr) == (fresh.returncode, fresh.stdout, fresh.stderr)
    assert warm_run.returncode == 2 and "split.val_fraction must be strictly between 0 and 1" in warm_run.stderr
    os.set_blocking(proc.stdout.fileno(), False)
    log = (proc.stdout.read() or b"").decode()
    assert f"iadbench check in {repo}" in log and f"iadbench split in {repo}" in log  # both went through it


def test_resources_record_whether_a_stage_ran_warm(monkeypatch):
    from iadbench import resources

    assert resources.host()["process"] == "fresh"
    monkeypatch.setattr(warm, "IN_WORKER", True)
    assert resources.host()["process"] == "warm"


def test_the_key_follows_sources_packages_and_start_up_environment(tmp_path, monkeypatch):
    base = {"PATH": "/usr/bin", "HOME": "/h"}
    assert warm.key(base) == warm.key({**base, "DVC_STAGE": "train@padim-nut", "PWD": "/x", "SHLVL": "3"})
    queued = {"CELERY_LOG_LEVEL": "20", "_MP_FORK_LOGLEVEL_": "20", "GIT_AUTHOR_NAME": "t", "DVC_EXP_NAME": "e"}
    assert warm.key(base) == warm.key({**base, **queued})  # a queued experiment reuses the workspace's worker
    assert warm.key(base) != warm.key({**base, "MALLOC_MMAP_THRESHOLD_": "4194304"})
    assert warm.key(base) != warm.key({**base, "HF_HUB_OFFLINE": "1"})
    copy = tmp_path / "iadbench"
    copy.mkdir()
    (copy / "a.py").write_text("x = 1\n")
    monkeypatch.setattr(warm, "PACKAGE_DIR", copy)
    before = warm.key(base)
    (copy / "a.py").write_text("x = 2\n")  # a code change: a new worker
    assert warm.key(base) != before


def test_off_switch_and_private_socket_folder(tmp_path, monkeypatch):
    assert not warm.enabled({"IADBENCH_WARM": "0"}) and not warm.enabled({"IADBENCH_WARM": "off"})
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    folder = warm.socket_dir()
    assert folder.stat().st_mode & 0o777 == 0o700
    folder.chmod(0o777)
    with pytest.raises(PermissionError, match="not private to this user"):
        warm.socket_dir()
    folder.chmod(0o700)
    monkeypatch.setenv("IADBENCH_WARM", "0")
    assert warm.run_warm(["--version"]) is None  # off: the console script runs the command in its own process
