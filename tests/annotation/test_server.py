"""The server's launch settings, without starting it (the round-trip test starts a real one)."""

from pathlib import Path

import pytest

from iadbench.annotation import server
from iadbench.cli import main
from iadbench.errors import IadbenchError


def test_server_is_local_quiet_and_roots_files_at_the_repository(tmp_path):
    env = server.server_env(tmp_path, tmp_path / "data", token="t" * 40)
    assert env["COLLECT_ANALYTICS"] == "false" and env["LATEST_VERSION_CHECK"] == "false"
    assert env["SENTRY_DSN"] == "" and env["FRONTEND_SENTRY_DSN"] == ""
    assert env["LABEL_STUDIO_DISABLE_SIGNUP_WITHOUT_LINK"] == "true"
    assert env["LOCAL_FILES_SERVING_ENABLED"] == "true" and env["LOCAL_FILES_DOCUMENT_ROOT"] == str(tmp_path.resolve())
    assert env["LABEL_STUDIO_USER_TOKEN"] == "t" * 40
    command = server.server_command(Path("ls"), "127.0.0.1", 8123)
    assert command[command.index("--internal-host") + 1] == "127.0.0.1" and "8123" in command


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({}, "set LABEL_STUDIO_USERNAME"),
        ({"LABEL_STUDIO_USERNAME": "a@b.c"}, "set LABEL_STUDIO_USERNAME"),
        ({"LABEL_STUDIO_USERNAME": "a@b.c", "LABEL_STUDIO_PASSWORD": "short"}, "at least 8 characters"),
    ],
)
def test_credentials_come_from_the_environment_only(monkeypatch, env, message):
    for key in server.CREDENTIAL_ENV:
        monkeypatch.delenv(key, raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(IadbenchError, match=message):
        server.credentials()


def test_missing_lock_is_a_clear_error(tmp_path):
    with pytest.raises(IadbenchError, match="server lock file not found"):
        server.ensure_environment(tmp_path / "venv", tmp_path / "missing.lock")


def test_push_and_pull_need_a_dataset(capsys):
    assert main(["annotate", "push"]) == 2
    assert "needs --dataset NAME" in capsys.readouterr().err


def test_credentials_never_reach_the_command_line(monkeypatch, tmp_path):
    """`ps` shows every user a process's arguments; the password and token go through the environment only."""
    secrets = {"LABEL_STUDIO_USERNAME": "admin@iadbench.invalid", "LABEL_STUDIO_PASSWORD": "s3cret-pass-word",
               "LABEL_STUDIO_API_KEY": "a" * 40}  # fmt: skip
    for key, value in secrets.items():
        monkeypatch.setenv(key, value)
    seen = {}

    def fake_popen(command, env, **kwargs):
        seen.update(command=command, env=env)
        return "process"

    monkeypatch.setattr(server.subprocess, "Popen", fake_popen)
    assert server.start("127.0.0.1", 8123, tmp_path / "data", tmp_path, binary=Path("label-studio")) == "process"
    line = " ".join(seen["command"])
    assert not any(v in line for v in secrets.values()) and "--password" not in line and "--user-token" not in line
    assert seen["env"]["LABEL_STUDIO_PASSWORD"] == "s3cret-pass-word"
    assert seen["env"]["LABEL_STUDIO_USERNAME"] == "admin@iadbench.invalid"
    assert seen["env"]["LABEL_STUDIO_USER_TOKEN"] == "a" * 40
