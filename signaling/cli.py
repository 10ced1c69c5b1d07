"""The ``coreview`` command: serve, user, catalog, demo-data."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from aiohttp import web

from signaling.app import create_app
from signaling.clock import SystemClock
from signaling.demo import seed
from signaling.errors import SignalingError
from signaling.messages import ROLE_NAMES, message
from signaling.middleware import AccessLogger
from signaling.models import ROLES
from signaling.services import Services, open_services
from signaling.settings import Settings, SettingsError, load_settings


def _parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--data-dir", type=Path, help="数据目录（默认 ./var，或 COREVIEW_DATA_DIR）"
    )
    common.add_argument("--config", type=Path, help="TOML 配置文件")
    parser = argparse.ArgumentParser(prog="coreview", description="远程审办系统")
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", parents=[common], help="启动服务")
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)

    user = commands.add_parser("user", help="账户管理").add_subparsers(dest="action", required=True)
    add = user.add_parser("add", parents=[common], help="新建账户")
    add.add_argument("username")
    add.add_argument("--role", required=True, choices=ROLES)
    add.add_argument("--display-name")
    unit = add.add_mutually_exclusive_group()
    unit.add_argument("--outlet", help="窗口人员所属网点编码")
    unit.add_argument("--department", help="审批人员所属部门编码")
    unit.add_argument("--jurisdiction", help="监察人员的行政区划代码（缺省为全部）")
    add.add_argument(
        "--password-stdin", action="store_true", required=True, help="从标准输入读取密码"
    )
    add.add_argument("--temporary", action="store_true", help="首次登录须修改密码")

    catalog = commands.add_parser("catalog", help="事项目录").add_subparsers(
        dest="action", required=True
    )
    load = catalog.add_parser("import", parents=[common], help="导入目录 JSON 文件")
    load.add_argument("file", type=Path)

    demo = commands.add_parser("demo-data", parents=[common], help="写入演示数据并列出演示账户")
    demo.add_argument("--json", action="store_true", help="以 JSON 输出")
    return parser


def _settings(args: argparse.Namespace) -> Settings:
    overrides = {
        "data_dir": args.data_dir,
        "host": getattr(args, "host", None),
        "port": getattr(args, "port", None),
    }
    return load_settings(config_file=args.config, overrides=overrides)


async def _with_services(settings: Settings, args: argparse.Namespace) -> int:
    async with open_services(settings, SystemClock()) as services:
        return await _run(services, settings, args)


async def _run(services: Services, settings: Settings, args: argparse.Namespace) -> int:
    if args.command == "user":
        password = sys.stdin.readline().rstrip("\r\n")
        data: dict[str, Any] = {
            "username": args.username,
            "display_name": args.display_name or args.username,
            "role": args.role,
            "password": password,
            "temporary": args.temporary,
            "outlet": args.outlet,
            "department": args.department,
            "jurisdiction": args.jurisdiction,
        }
        user = await services.accounts.create_user(data, actor="cli")
        print(f"已创建账户 {user.username}（{ROLE_NAMES[user.role]}）")
    elif args.command == "catalog":
        try:
            content = json.loads(args.file.read_text("utf-8"))
        except (OSError, ValueError) as exc:
            print(f"无法读取目录文件：{exc}", file=sys.stderr)
            return 2
        counts = await services.catalog.import_catalog(content, actor="cli")
        print("已导入：" + json.dumps(counts, ensure_ascii=False))
    elif args.command == "demo-data":
        accounts = await seed(services, settings.data_dir)
        _print_accounts(accounts, as_json=args.json)
    return 0


def _print_accounts(accounts: list[dict[str, Any]], *, as_json: bool) -> None:
    if as_json:
        keys = ("username", "password", "role", "outlet", "department")
        listed = [{k: a[k] for k in keys if k in a} for a in accounts]
        print(json.dumps({"accounts": listed}, ensure_ascii=False))
        return
    if not accounts:
        print("数据目录中已有正式账户，未写入演示数据。")
        return
    print("演示账户（仅用于演示，密码随机生成）：")
    for account in accounts:
        unit = account.get("outlet") or account.get("department") or ""
        print(
            f"  {ROLE_NAMES[account['role']]:<6} {account['username']:<14} "
            f"密码 {account['password']}  {unit}"
        )


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        settings = _settings(args)
    except (SettingsError, OSError) as exc:
        print(f"配置有误：{exc}", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s %(message)s"
    )
    if args.command == "serve":
        web.run_app(
            create_app(settings),
            host=settings.host,
            port=settings.port,
            access_log_class=AccessLogger,
            print=lambda _text: print(f"coreview 已启动：http://{settings.host}:{settings.port}"),
        )
        return 0
    try:
        return asyncio.run(_with_services(settings, args))
    except SignalingError as exc:
        print(f"错误：{message(exc.code, exc.params)}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
