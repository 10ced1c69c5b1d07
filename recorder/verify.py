"""``coreview verify PATH [--expect-head HASH] [--expect-key KEY_ID ...]``: check an
evidence package offline.

Imports only the recorder and libraries; also runs as ``python -m recorder.verify``.
Exit 0 when everything holds, 1 naming each problem, 2 when the input is unusable.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Sequence
from pathlib import Path

from recorder.logverify import Problem
from recorder.pkgarchive import Archive, PackageError
from recorder.pkgreport import VerifyReport
from recorder.pkgverify import verify_package
from recorder.problem_text import PROBLEM_TEXT, UNUSABLE_TEXT

HEAD = re.compile(r"[0-9a-fA-F]{64}")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("package", type=Path, help="证据包文件（.zip）")
    parser.add_argument(
        "--expect-head", metavar="HASH", help="预期的案件事件链链头哈希（从其他渠道获得）"
    )
    parser.add_argument(
        "--expect-key",
        metavar="KEY_ID",
        action="append",
        help="出具单位的签名密钥编号（coreview keys list 列出；可重复给出，从其他渠道获得）",
    )
    parser.add_argument("--workers", type=int, default=2, help="并行进程数（默认 2）")
    parser.add_argument(
        "--no-sm3", action="store_true", help="只核对 SHA-256，跳过 SM3（更快；默认两者都核对）"
    )


def _line(mark: str, problem: Problem) -> str:
    text = PROBLEM_TEXT.get(problem.code, problem.code)
    return f"{mark} {problem.where}：{text}（{problem.detail}） [{problem.code}]"


def print_report(report: VerifyReport, keys_pinned: bool = False) -> int:
    for problem in report.problems:
        print(_line("✗", problem))
    for warning in report.warnings:
        print(_line("⚠", warning))
    for purged in report.purged:
        print(_line("·", purged))
    print(
        f"案件 {report.case_no}：{report.files} 个文件（{report.bytes} 字节）、"
        f"{report.events} 条事件、{report.checkpoints} 个签名检查点；"
        f"清单签名密钥 {report.key_id}；事件链链头 {report.head}"
    )
    if report.ok:
        print("证据包验证通过：所有文件、事件、证明与签名均完整一致。")
        if keys_pinned:
            print("签名密钥均为 --expect-key 给出的出具单位密钥。")
        else:
            print("注意：签名密钥由证据包自带，请向出具单位核对上面的密钥编号或链头哈希")
            print("（或用 --expect-key 给出出具单位公布的密钥编号）。")
        return 0
    print(f"证据包验证失败：发现 {len(report.problems)} 处问题。", file=sys.stderr)
    return 1


def run(args: argparse.Namespace) -> int:
    if args.expect_head is not None and not HEAD.fullmatch(args.expect_head):
        print("参数有误：--expect-head 应为 64 位十六进制哈希", file=sys.stderr)
        return 2
    expect_keys = None
    if args.expect_key is not None:
        if not all(HEAD.fullmatch(k) for k in args.expect_key):
            print("参数有误：--expect-key 应为 64 位十六进制密钥编号", file=sys.stderr)
            return 2
        expect_keys = frozenset(k.lower() for k in args.expect_key)
    if not 1 <= args.workers <= 64:
        print("参数有误：--workers 应在 1 到 64 之间", file=sys.stderr)
        return 2
    try:
        archive = Archive.open(args.package)
        report = verify_package(
            archive, args.expect_head, args.workers, sm3=not args.no_sm3, expect_keys=expect_keys
        )
    except PackageError as exc:
        print(f"无法验证：{UNUSABLE_TEXT.get(exc.code, exc.code)}（{exc.detail}）", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"无法读取证据包：{exc.strerror or exc}", file=sys.stderr)
        return 2
    return print_report(report, keys_pinned=expect_keys is not None)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="coreview verify", description="离线验证证据包")
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
