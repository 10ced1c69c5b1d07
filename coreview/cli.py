"""The ``coreview`` command: serve, user, catalog, log, keys, export, verify, retention,
demo-data,
tls-cert, simulate."""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import logging
import os
import stat
import sys
import urllib.parse
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from aiohttp import web

from coreview.app import create_app
from coreview.simulate import SimulateError, simulate
from media.loops import LoopChoiceError, impl_name, new_event_loop
from recorder.clock import SystemClock
from recorder.errors import LogError, StoreError
from recorder.logverify import LogReport, verify_stored
from recorder.verify import add_arguments as add_verify_arguments
from recorder.verify import run as run_verify
from signaling.custody.exports import Exporter
from signaling.custody.purge import run_retention
from signaling.node.demo import seed
from signaling.node.services import Services, open_services
from signaling.node.serving import (
    WILDCARD_HOSTS,
    TlsError,
    is_loopback,
    make_demo_certificate,
    open_urls,
    server_context,
    settle_heap,
)
from signaling.settings import Settings, SettingsError, load_settings
from signaling.storage.models import ROLES
from signaling.web.errors import SignalingError
from signaling.web.messages import ROLE_NAMES, message, problem_name
from signaling.web.middleware import AccessLogger

DEFAULT_SIMULATE_MATTER = "LZ-SCJG-0101"
"""A demo matter that the demo approver ``shenpi`` (LZ-SCJG) approves."""
MAX_SIMULATE_SESSIONS = 50
MAX_SIMULATE_SECONDS = 3600.0
SIMULATE_ACCOUNTS = {
    "clerk": ("窗口人员", "COREVIEW_SIMULATE_CLERK"),
    "approver": ("审批人员", "COREVIEW_SIMULATE_APPROVER"),
}
"""Accounts ``simulate`` logs in with: the role's Chinese name and its environment variable."""


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

    log = commands.add_parser("log", help="审计日志").add_subparsers(dest="action", required=True)
    log.add_parser("checkpoint", parents=[common], help="立即签名一个日志检查点")
    verify = log.add_parser("verify", parents=[common], help="对照签名检查点验证整个审计日志")
    verify.add_argument("--witness", type=Path, help="对照的见证文件（默认为配置项 witness_file）")
    keys = commands.add_parser("keys", help="节点签名密钥").add_subparsers(
        dest="action", required=True
    )
    keys.add_parser("rotate", parents=[common], help="轮换节点签名密钥（旧公钥保留以供验证）")
    keys.add_parser(
        "list", parents=[common], help="列出签名密钥编号（供 coreview verify --expect-key 使用）"
    )
    retention = commands.add_parser("retention", help="保存期限").add_subparsers(
        dest="action", required=True
    )
    purge = retention.add_parser(
        "run", parents=[common], help="删除已过保存期限且未被法律保全的案件的媒体文件"
    )
    purge.add_argument("--dry-run", action="store_true", help="只列出将删除的文件，不删除")

    export = commands.add_parser("export", parents=[common], help="导出案件证据包（zip）")
    export.add_argument("case_no", help="案件编号")
    export.add_argument("--out", type=Path, required=True, help="证据包文件路径（不得已存在）")
    verify_package = commands.add_parser("verify", help="离线验证证据包（无需服务、数据库或网络）")
    add_verify_arguments(verify_package)

    demo = commands.add_parser("demo-data", parents=[common], help="写入演示数据并列出演示账户")
    demo.add_argument("--json", action="store_true", help="以 JSON 输出")

    tls = commands.add_parser(
        "tls-cert", parents=[common], help="生成自签名 HTTPS 证书（演示用），写入数据目录 tls/"
    )
    tls.add_argument(
        "--host",
        action="append",
        default=[],
        metavar="NAME/IP",
        help="其他电脑访问本机所用的主机名或 IP 地址（可多次给出）",
    )
    tls.add_argument("--replace", action="store_true", help="覆盖已有的证书")

    simulate = commands.add_parser(
        "simulate", help="模拟审办会话（经公开接口），输出一行 JSON 汇总"
    )
    simulate.add_argument("--url", required=True, help="服务地址，如 http://127.0.0.1:8080")
    for role, (name, variable) in SIMULATE_ACCOUNTS.items():
        source = simulate.add_mutually_exclusive_group()
        source.add_argument(
            f"--{role}",
            metavar="USER:PASS",
            help=f"{name}账户（命令行中的密码可被 ps 看到；建议改用环境变量 {variable}）",
        )
        source.add_argument(
            f"--{role}-file",
            type=Path,
            metavar="PATH",
            help=f"{name}账户文件，内容为一行 用户名:密码，权限须为 600",
        )
    simulate.add_argument(
        "--matter", default=DEFAULT_SIMULATE_MATTER, help="事项编码（须由该审批人员的部门审批）"
    )
    simulate.add_argument("--sessions", type=int, default=1, help="同时进行的会话数")
    simulate.add_argument("--seconds", type=float, default=5.0, help="每个会话传输音视频的秒数")
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
    elif args.command == "log" and args.action == "checkpoint":
        checkpoint = await services.audit.checkpoint()
        print(json.dumps({"checkpoint": checkpoint.to_dict()}, ensure_ascii=False))
    elif args.command == "log":
        window = dt.timedelta(seconds=2 * settings.checkpoint_seconds)
        report = await verify_stored(
            services.audit,
            witness=args.witness or settings.witness_file,
            unsigned_before=dt.datetime.now(dt.UTC) - window,
        )
        return _print_report(report)
    elif args.command == "keys" and args.action == "list":
        for key in await services.audit.keyring.keys():
            print(f"{key.key_id}  自 {key.valid_from} 起有效")
    elif args.command == "keys":
        old, new = await services.audit.rotate_key(actor="cli")
        print(f"已轮换节点签名密钥：{old[:16]}… → {new[:16]}…")
    elif args.command == "export":
        return await _export(services, args)
    elif args.command == "retention":
        summary = await run_retention(
            services.engine, services.audit, services.evidence, SystemClock(), dry_run=args.dry_run
        )
        print("\n".join(summary.lines()))
        return 1 if summary.failed else 0
    elif args.command == "demo-data":
        accounts = await seed(services, settings.data_dir)
        _print_accounts(accounts, as_json=args.json)
    return 0


async def _export(services: Services, args: argparse.Namespace) -> int:
    """``coreview export``: 0 when written whole; 1 if the case is unknown, writing
    failed, or stored files were missing (the package is written without them, and
    says so: verify will name them)."""
    exporter = Exporter(services.engine, services.audit, services.evidence, SystemClock())
    try:
        written = await exporter.export(args.case_no, args.out, actor="cli")
    except (OSError, StoreError) as exc:
        print(f"导出失败：{exc}", file=sys.stderr)
        return 1
    print(
        f"已导出证据包：{written.path}（{written.files} 个文件，{written.bytes} 字节，"
        f"SHA-256 {written.sha256}）"
    )
    for sha256 in written.missing:
        print(f"警告：证据文件 {sha256} 在存储中缺失，未能写入证据包。", file=sys.stderr)
    return 1 if written.missing else 0


def _print_report(report: LogReport) -> int:
    """``coreview log verify``: 0 if the whole log holds, 1 with each problem if not."""
    for problem in report.problems:
        print(f"✗ {problem.where}：{problem_name(problem.code)}（{problem.detail}）")
    if report.witnessed is None:
        print(
            "注意：未设置见证文件，签名检查点只与数据库中的副本对照；"
            "掌握数据库（及数据目录中私钥）的人可改写日志而不被发现。"
        )
    else:
        print(f"已对照见证文件中的 {report.witnessed} 个签名检查点。")
    if report.ok:
        print(
            f"审计日志完整：{report.events} 条事件、{report.checkpoints} 个签名检查点均验证通过。"
        )
        return 0
    print(f"审计日志验证失败：发现 {len(report.problems)} 处问题。", file=sys.stderr)
    return 1


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


def _serve(settings: Settings) -> int:
    try:
        context = server_context(settings)
    except TlsError as exc:
        print(f"配置有误：{exc}", file=sys.stderr)
        return 2
    try:
        loop = new_event_loop()
    except LoopChoiceError as exc:
        print(f"配置有误：{exc}", file=sys.stderr)
        return 2
    logger.info("event loop: %s", impl_name(loop))
    web.run_app(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        ssl_context=context,
        access_log_class=AccessLogger,
        print=lambda _text: _started(settings),
        loop=loop,
    )
    return 0


def _started(settings: Settings) -> None:
    _print_started(settings)
    settle_heap()


def _print_started(settings: Settings) -> None:
    """Where to open the service: with a wildcard host, each address of this machine."""
    urls = open_urls(settings.host, settings.port, settings.tls)
    if settings.host not in WILDCARD_HOSTS:
        print(f"coreview 已启动：{urls[0]}")
    else:
        print(f"coreview 已启动，监听 {settings.host or '*'}:{settings.port}，可在浏览器打开：")
        for url in urls or ["（本机没有非环回地址，仅能在本机打开）"]:
            print(f"  {url}")
        local = open_urls("127.0.0.1", settings.port, settings.tls)[0]
        print(f"  {local}（仅本机）")
    if not settings.tls and not is_loopback(settings.host):
        print(
            "注意：未启用 HTTPS，其他电脑的浏览器不允许网页使用摄像头和麦克风；"
            "请用 coreview tls-cert 生成证书并设置 tls_cert、tls_key（见 README）。"
        )


def _tls_cert(settings: Settings, hosts: tuple[str, ...], *, replace: bool) -> int:
    try:
        made = make_demo_certificate(settings.data_dir, hosts, replace=replace)
    except FileExistsError as exc:
        print(f"证书已存在：{exc}；如需重新生成请加 --replace。", file=sys.stderr)
        return 1
    except TlsError as exc:
        print(f"参数有误：{exc}", file=sys.stderr)
        return 2
    print(f"已生成自签名证书（演示用）：{made.cert}")
    print(f"私钥：{made.key}")
    print("适用于：" + "、".join(made.names))
    print(f"SHA-256 指纹：{made.sha256}")
    print(f"启用 HTTPS：COREVIEW_TLS_CERT={made.cert} COREVIEW_TLS_KEY={made.key} coreview serve")
    return 0


def _account(value: str, option: str) -> tuple[str, str]:
    username, sep, password = value.partition(":")
    if not sep or not username or not password:
        raise ValueError(f"{option} 应写作 用户名:密码（以英文冒号分隔，两者都不能为空）")
    return username, password


def _account_of(args: argparse.Namespace, role: str) -> tuple[str, str]:
    """USER:PASS from ``--ROLE`` (visible to ``ps``: a hint says so), ``--ROLE-file``
    (one line, readable by its owner only) or ``COREVIEW_SIMULATE_ROLE``."""
    name, variable = SIMULATE_ACCOUNTS[role]
    value: str | None = getattr(args, role)
    path: Path | None = getattr(args, f"{role}_file")
    if value is not None:
        print(
            f"提示：命令行中的密码可被本机其他用户通过 ps 看到，建议改用环境变量 {variable} "
            f"或 --{role}-file",
            file=sys.stderr,
        )
        return _account(value, f"--{role}")
    if path is not None:
        try:
            mode = path.stat().st_mode
            lines = path.read_text("utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) else "不是 UTF-8 文本"
            raise ValueError(f"无法读取 --{role}-file {path}（{reason}）") from exc
        if mode & 0o077:
            raise ValueError(
                f"--{role}-file {path} 的权限过宽（{stat.S_IMODE(mode):o}），"
                f"其他用户可以读取，请执行 chmod 600 {path}"
            )
        return _account(lines[0] if lines else "", f"--{role}-file")
    if variable in os.environ:
        return _account(os.environ[variable], variable)
    raise ValueError(
        f"缺少{name}账户：请设置环境变量 {variable}=用户名:密码，"
        f"或用 --{role}-file 指定账户文件（权限 600）"
    )


def _simulate(args: argparse.Namespace) -> int:
    """``coreview simulate``: 0 if every session was clean, 1 if not (or the run could
    not start), 2 for bad arguments."""
    try:
        clerk = _account_of(args, "clerk")
        approver = _account_of(args, "approver")
        url = urllib.parse.urlsplit(args.url)
        if url.scheme not in ("http", "https") or not url.hostname:
            raise ValueError(f"--url 应为 http:// 或 https:// 开头的服务地址，收到 {args.url!r}")
        if not 1 <= args.sessions <= MAX_SIMULATE_SESSIONS:
            raise ValueError(f"--sessions 应在 1 到 {MAX_SIMULATE_SESSIONS} 之间")
        if not 0 < args.seconds <= MAX_SIMULATE_SECONDS:
            raise ValueError(f"--seconds 应大于 0 且不超过 {MAX_SIMULATE_SECONDS:.0f}")
    except ValueError as exc:
        print(f"参数有误：{exc}", file=sys.stderr)
        return 2
    try:
        summary = asyncio.run(
            simulate(args.url, clerk, approver, args.matter, args.sessions, args.seconds)
        )
    except SimulateError as exc:
        reasons = {
            "unreachable": f"无法连接服务 {args.url}（{exc.detail}）",
            "not_coreview": f"{args.url} 的应答不是 coreview 接口（{exc.detail}）",
            "login_failed": f"账户 {exc.account} 登录失败：{exc.detail}",
            "wrong_role": (
                f"账户 {exc.account} 是{ROLE_NAMES.get(exc.detail, exc.detail)}，"
                f"不能用作{'窗口人员' if exc.account == clerk[0] else '审批人员'}"
            ),
        }
        print(f"模拟未能开始：{reasons.get(exc.code, str(exc))}", file=sys.stderr)
        return 1
    print(json.dumps(summary, ensure_ascii=False))
    return 0 if summary["all_clean"] else 1


logger = logging.getLogger(__name__)

MEDIA_LOGGERS = ("aioice", "aiortc")
"""Libraries logging every ICE/DTLS step at INFO: their detail is shown at DEBUG only."""


def configure_logging(level: str) -> None:
    """The service's log at ``level``; the media libraries' detail only at DEBUG."""
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s %(message)s")
    logging.getLogger().setLevel(level.upper())
    debug = logging.getLevelName(level.upper()) == logging.DEBUG
    for name in MEDIA_LOGGERS:
        logging.getLogger(name).setLevel(logging.NOTSET if debug else logging.WARNING)


def main(argv: Sequence[str] | None = None) -> int:
    os.umask(0o077)  # whatever this process writes (data, exports) is the owner's only
    args = _parser().parse_args(argv)
    if args.command == "simulate":
        logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
        return _simulate(args)
    if args.command == "verify":
        return run_verify(args)
    if args.command == "export":
        if args.out.exists() or not args.out.parent.is_dir():
            reason = "已存在" if args.out.exists() else "所在目录不存在"
            print(f"参数有误：--out {args.out} {reason}", file=sys.stderr)
            return 2
    try:
        settings = _settings(args)
    except (SettingsError, OSError) as exc:
        print(f"配置有误：{exc}", file=sys.stderr)
        return 2
    configure_logging(settings.log_level)
    if args.command == "serve":
        return _serve(settings)
    if args.command == "tls-cert":
        return _tls_cert(settings, tuple(args.host), replace=args.replace)
    try:
        return asyncio.run(_with_services(settings, args))
    except (SignalingError, LogError) as exc:
        params = exc.params if isinstance(exc, SignalingError) else {}
        print(f"错误：{message(exc.code, params)}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
