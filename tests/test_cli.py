"""The coreview command: demo-data, user add, catalog import; secrets on disk."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys

import pytest

from signaling.node.demo import demo_catalog


def coreview(*args: str, stdin: str = "", env: dict[str, str] | None = None):
    return subprocess.run(
        [sys.executable, "-m", "coreview.cli", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )


def test_demo_data_seeds_once_and_prints_accounts(tmp_path):
    """demo-data --json lists one account per role with passwords, the same each time."""
    first = coreview("demo-data", "--json", "--data-dir", str(tmp_path))
    assert first.returncode == 0, first.stderr
    accounts = json.loads(first.stdout)["accounts"]
    assert {a["role"] for a in accounts} == {"clerk", "approver", "auditor", "admin"}
    assert all(len(a["password"]) >= 10 for a in accounts)
    again = coreview("demo-data", "--json", "--data-dir", str(tmp_path))
    assert json.loads(again.stdout)["accounts"] == accounts
    human = coreview("demo-data", "--data-dir", str(tmp_path))
    assert "演示账户" in human.stdout and accounts[0]["password"] in human.stdout


def test_secrets_are_private_and_never_printed(tmp_path):
    """Keys are created 0600 in a 0700 directory and appear in no output."""
    result = coreview("demo-data", "--data-dir", str(tmp_path))
    secrets_dir = tmp_path / "secrets"
    assert stat.S_IMODE(secrets_dir.stat().st_mode) == 0o700
    for key in secrets_dir.iterdir():
        assert stat.S_IMODE(key.stat().st_mode) == 0o600
        assert key.read_bytes().hex() not in result.stdout + result.stderr
    assert stat.S_IMODE((tmp_path / "demo-accounts.json").stat().st_mode) == 0o600


def test_user_add_reads_password_from_stdin(tmp_path):
    """user add creates an account with the password given on standard input."""
    coreview("demo-data", "--data-dir", str(tmp_path))
    added = coreview(
        "user",
        "add",
        "lisi",
        "--role",
        "approver",
        "--department",
        "BH-RSJ",
        "--password-stdin",
        "--data-dir",
        str(tmp_path),
        stdin="Secret12345\n",
    )
    assert added.returncode == 0, added.stderr
    assert "lisi" in added.stdout
    duplicate = coreview(
        "user",
        "add",
        "lisi",
        "--role",
        "admin",
        "--password-stdin",
        "--data-dir",
        str(tmp_path),
        stdin="Secret12345\n",
    )
    assert duplicate.returncode == 1
    assert "用户名已被使用" in duplicate.stderr


@pytest.mark.parametrize(
    ("args", "error"),
    [
        (["--role", "clerk", "--outlet", "NOPE"], "所属网点不存在"),
        (["--role", "approver"], "请填写所属部门"),
        (["--role", "admin"], "密码至少"),
    ],
)
def test_user_add_refuses_bad_input(tmp_path, args, error):
    """A missing or unknown unit, or a weak password, is refused in Chinese."""
    coreview("demo-data", "--data-dir", str(tmp_path))
    result = coreview(
        "user",
        "add",
        "wangwu",
        *args,
        "--password-stdin",
        "--data-dir",
        str(tmp_path),
        stdin="short\n" if args == ["--role", "admin"] else "Secret12345\n",
    )
    assert result.returncode == 1
    assert error in result.stderr


def test_catalog_import_is_all_or_nothing(tmp_path):
    """A file with one bad matter imports nothing; a good file imports everything."""
    catalog = demo_catalog()
    catalog["matters"].append({**catalog["matters"][0], "code": "X-1", "department": "NOPE"})
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(catalog, ensure_ascii=False))
    data_dir = tmp_path / "var"
    result = coreview("catalog", "import", str(bad), "--data-dir", str(data_dir))
    assert result.returncode == 1
    assert "所属部门不存在" in result.stderr
    catalog["matters"].pop()
    good = tmp_path / "good.json"
    good.write_text(json.dumps(catalog, ensure_ascii=False))
    result = coreview("catalog", "import", str(good), "--data-dir", str(data_dir))
    assert result.returncode == 0, result.stderr
    assert '"matters": 11' in result.stdout


def test_data_dir_from_environment(tmp_path):
    """COREVIEW_DATA_DIR stands in for --data-dir."""
    env = {**os.environ, "COREVIEW_DATA_DIR": str(tmp_path / "envdir")}
    result = coreview("demo-data", "--json", env=env)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "envdir" / "coreview.sqlite3").exists()
