"""Demo data for a first start: catalogue, one account per role (and a few more), and
two cases. Passwords are random and kept, for the demo only, in the data directory."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from typing import Any

from recorder.private_files import write_private
from signaling import id_numbers
from signaling.accounts.accounts import temporary_password
from signaling.node.services import Services

DEMO_ACCOUNTS: list[dict[str, Any]] = [
    {"username": "admin", "display_name": "系统管理员", "role": "admin"},
    {"username": "jiancha", "display_name": "电子监察员", "role": "auditor"},
    {
        "username": "chuangkou",
        "display_name": "海城区窗口人员",
        "role": "clerk",
        "outlet": "BH-HC-01",
    },
    {
        "username": "chuangkou_lz",
        "display_name": "城中区窗口人员",
        "role": "clerk",
        "outlet": "LZ-CZ-01",
    },
    {
        "username": "shenpi",
        "display_name": "市场监管审批员",
        "role": "approver",
        "department": "LZ-SCJG",
    },
    {
        "username": "shenpi_rs",
        "display_name": "人社审批员",
        "role": "approver",
        "department": "LZ-RSJ",
    },
]
DEMO_CASES = [
    ("chuangkou", "LZ-SCJG-0101", "张明华", "45020219800115002", "13807721234", "企业名称变更"),
    ("chuangkou", "LZ-RSJ-0201", "李秀兰", "45050219920823004", "13977985678", ""),
]
ACCOUNTS_FILE = "demo-accounts.json"


def demo_catalog() -> dict[str, Any]:
    text = resources.files("signaling.node").joinpath("demo_catalog.json").read_text("utf-8")
    data: dict[str, Any] = json.loads(text)
    return data


async def seed(services: Services, data_dir: Path) -> list[dict[str, Any]]:
    """Seed once; return the demo accounts with their passwords either way."""
    path = data_dir / ACCOUNTS_FILE
    if path.exists():
        accounts: list[dict[str, Any]] = json.loads(path.read_text("utf-8"))
        return accounts
    if await services.accounts.list():
        return []  # a real installation: no demo data, no passwords to show
    await services.catalog.import_catalog(demo_catalog(), actor="demo-data")
    accounts = []
    for account in DEMO_ACCOUNTS:
        password = temporary_password()
        await services.accounts.create_user(
            {**account, "password": password, "temporary": False}, actor="demo-data"
        )
        accounts.append({**account, "password": password})
    write_private(path, json.dumps(accounts, ensure_ascii=False, indent=2).encode())
    for clerk_name, matter, name, first17, phone, notes in DEMO_CASES:
        clerk = await services.accounts.find(clerk_name)
        if clerk is None:
            raise RuntimeError(f"demo clerk {clerk_name} missing")
        id_number = first17 + id_numbers.check_digit(first17)
        await services.cases.create(
            clerk,
            {
                "matter": matter,
                "applicant_name": name,
                "id_number": id_number,
                "phone": phone,
                "notes": notes,
            },
        )
    return accounts
