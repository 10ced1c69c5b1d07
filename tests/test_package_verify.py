"""Offline verify of evidence packages (recorder/verify.py) on a synthetic case: the
whole package verifies; every tampered copy exits 1 naming the problem; unusable input
exits 2 and writes nothing; random byte changes never give a traceback and never pass
when they touch a covered byte."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from recorder import package
from recorder.auditlog import AuditEvent
from recorder.keyring import key_id
from recorder.pkgarchive import Archive, PackageError
from recorder.pkgjobs import Examined
from recorder.pkgmedia import check_tracks, replay
from recorder.pkgreport import VerifyReport
from recorder.pkgverify import verify_package
from recorder.verify import main
from tests.evidence_package import (
    OTHER_CASE,
    Case,
    build_case,
    flip,
    rewrite,
    sign,
)

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def case(tmp_path_factory: pytest.TempPathFactory) -> Case:
    return build_case(tmp_path_factory.mktemp("case"))


def verify(path: Path, *args: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main([str(path), *args])
    out, err = capsys.readouterr()
    return code, out, err


def codes(out: str) -> set[str]:
    """The stable codes of the problems printed (``… [code]``)."""
    return {line.rsplit("[", 1)[1].rstrip("]") for line in out.splitlines() if line[:1] == "✗"}


def member(case: Case, role: str) -> str:
    return next(m.path for m in case.media if m.role == role)


def test_an_intact_package_verifies(case: Case, capsys: pytest.CaptureFixture[str]) -> None:
    """The synthetic case's package: exit 0, every file, event and checkpoint counted,
    and the chain head printed."""
    code, out, err = verify(case.path, capsys=capsys)
    assert code == 0, out + err
    assert "证据包验证通过" in out
    assert f"{len(case.events)} 条事件" in out and "2 个签名检查点" in out
    assert case.events[-1].hash in out
    code, out, _ = verify(case.path, "--expect-head", case.events[-1].hash, capsys=capsys)
    assert code == 0, out


def _flip_member(role: str) -> Callable[[Case, Path], Path]:
    def change(case: Case, out: Path) -> Path:
        name = member(case, role)
        with zipfile.ZipFile(case.path) as archive:
            data = archive.read(name)
        return rewrite(case.path, out, {name: flip(data, len(data) // 2)})

    return change


def _flip_document(name: str, at: Callable[[bytes], int]) -> Callable[[Case, Path], Path]:
    def change(case: Case, out: Path) -> Path:
        with zipfile.ZipFile(case.path) as archive:
            data = archive.read(name)
        return rewrite(case.path, out, {name: flip(data, at(data))})

    return change


def _signature_upper_cased(name: str) -> Callable[[Case, Path], Path]:
    """A hex letter of the first signature in ``name`` upper-cased: the same signature
    bytes once decoded, but a changed byte of the package."""

    def change(case: Case, out: Path) -> Path:
        with zipfile.ZipFile(case.path) as archive:
            data = bytearray(archive.read(name))
        start = data.index(b'"signature":"') + len(b'"signature":"')
        at = next(i for i in range(start, start + 128) if data[i] in b"abcdef")
        data[at] = data[at] - 32
        return rewrite(case.path, out, {name: bytes(data)})

    return change


def _removed(case: Case, out: Path) -> Path:
    return rewrite(case.path, out, {member(case, "capture"): None})


def _added(case: Case, out: Path) -> Path:
    return rewrite(case.path, out, {}, add={"media/" + "ab" * 32 + ".jpg": b"\xff\xd8\xff extra"})


def _resigned(events: Callable[[Case], list[object]]) -> Callable[[Case, Path], Path]:
    """Events changed and the package re-signed, as an owner of the node key could."""

    def change(case: Case, out: Path) -> Path:
        return case.write(out, case.contents(events(case)))  # type: ignore[arg-type]

    return change


def _dropped(case: Case) -> list[object]:
    return [e for e in case.events if e.case_seq != 3]


def _reordered(case: Case) -> list[object]:
    events: list[object] = list(case.events)
    events[2], events[3] = events[3], events[2]
    return events


def _duplicated(case: Case) -> list[object]:
    return [*case.events[:4], case.events[3], *case.events[4:]]


def _foreign(case: Case) -> list[object]:
    other = next(e for e in case.log.events if e.chain == f"case:{OTHER_CASE}")
    return [*case.events[:2], other, *case.events[2:]]


def _unknown_key(case: Case, out: Path) -> Path:
    stranger = Ed25519PrivateKey.generate()
    tree = case.log.tree()
    forged = [sign(stranger, tree, c.tree_size, case.log.start) for c in case.checkpoints]
    return dataclasses.replace(case, checkpoints=forged).write(out)


def _swapped_chunk(case: Case, out: Path) -> Path:
    """A chunk's bytes replaced under its name, the manifest made again for them."""
    target = next(m for m in case.media if m.role == "capture")
    fake = case.directory / "fake.capture"
    fake.write_bytes(target.source.read_bytes()[:-7])
    media = [dataclasses.replace(m, source=fake) if m is target else m for m in case.media]
    return case.write(out, case.contents(media=media))


TAMPERS: dict[str, tuple[Callable[[Case, Path], Path], set[str]]] = {
    "chunk-byte": (_flip_member("capture"), {"hash_mismatch"}),
    "playable-byte": (_flip_member("playable"), {"hash_mismatch"}),
    "still-byte": (_flip_member("still"), {"hash_mismatch"}),
    "manifest-byte": (
        _flip_document(package.MANIFEST, lambda d: d.index(b'"case_no":"') + 14),
        {"bad_signature"},
    ),
    "events-byte": (
        _flip_document(package.EVENTS, lambda d: d.index(b'"matter":"') + 12),
        {"hash_mismatch", "entry_altered", "not_in_checkpoint"},
    ),
    "manifest-signature-upper-case": (
        _signature_upper_cased(package.SIGNATURE),
        {"document_unreadable"},
    ),
    "checkpoint-signature-upper-case": (
        _signature_upper_cased(package.CHECKPOINTS),
        {"document_unreadable"},
    ),
    "file-removed": (_removed, {"file_missing"}),
    "file-added": (_added, {"file_extra"}),
    "events-dropped": (_resigned(_dropped), {"chain_broken"}),
    "events-reordered": (_resigned(_reordered), {"chain_broken"}),
    "events-duplicated": (_resigned(_duplicated), {"event_duplicated"}),
    "event-of-another-case": (_resigned(_foreign), {"wrong_chain"}),
    "checkpoint-unknown-key": (_unknown_key, {"unknown_key"}),
    "chunk-swapped-and-resigned": (_swapped_chunk, {"hash_mismatch"}),
}


@pytest.mark.parametrize("name", list(TAMPERS))
def test_tampered_copies_exit_1_naming_the_problem(
    name: str, case: Case, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Each tampered copy: exit 1, the expected codes among the problems, a Chinese
    summary on stderr, no traceback."""
    change, expected = TAMPERS[name]
    code, out, err = verify(change(case, tmp_path / "tampered.zip"), capsys=capsys)
    assert code == 1, out + err
    assert expected <= codes(out), out
    assert "证据包验证失败" in err and "Traceback" not in out + err


def test_a_truncated_log_is_caught_by_the_expected_head(
    case: Case, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The chain's last event cut off and the package re-signed holds together by
    itself; ``--expect-head`` with the real head names it."""
    cut = case.write(tmp_path / "cut.zip", case.contents(case.events[:-1]))
    code, out, _ = verify(cut, capsys=capsys)
    assert code == 0, out
    code, out, _ = verify(cut, "--expect-head", case.events[-1].hash, capsys=capsys)
    assert code == 1 and codes(out) == {"head_mismatch"}, out


def test_expected_keys_tell_a_forged_package_from_the_issuers(
    case: Case, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A package rebuilt whole under a forger's key holds together by itself; with the
    issuer's key id (``--expect-key``) it fails naming the key. The intact package passes
    with it, and a key registry whose id is not its public key's hash is named too."""
    issuer = key_id(case.key)
    code, out, _ = verify(case.path, "--expect-key", issuer.upper(), capsys=capsys)
    assert code == 0 and "签名密钥均为 --expect-key 给出的出具单位密钥" in out, out
    (tmp_path / "forged").mkdir()
    forged = build_case(tmp_path / "forged")
    assert verify(forged.path, capsys=capsys)[0] == 0
    code, out, _ = verify(forged.path, "--expect-key", issuer, capsys=capsys)
    assert code == 1 and codes(out) == {"untrusted_key"}, out
    relabelled = [dataclasses.replace(k, key_id="ab" * 32) for k in case.keys]
    changed = case.write(tmp_path / "relabelled.zip", case.contents(keys=relabelled))
    code, out, _ = verify(changed, capsys=capsys)
    assert code == 1 and "key_id_mismatch" in codes(out), out
    code, _, err = verify(case.path, "--expect-key", "not-a-key", capsys=capsys)
    assert code == 2 and "--expect-key" in err


@pytest.mark.parametrize(
    ("option", "expected"),
    [
        ({"hide_loss": True}, "track_gap_unlogged"),
        ({"bad_playable": True}, "playable_not_reproducible"),
        ({"still_size": "65x48"}, "still_mismatch"),
    ],
    ids=["unlogged-loss", "playable-from-another-chunk", "still-of-another-size"],
)
def test_media_that_disagree_with_the_log(
    option: dict[str, object], expected: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A log that signs media facts its files do not bear out: a packet loss the chunk
    shows but its event hides, a playable file its capture does not give, a still of
    another size than logged."""
    built = build_case(tmp_path, **option)  # type: ignore[arg-type]
    code, out, _ = verify(built.path, capsys=capsys)
    assert code == 1 and expected in codes(out), out


def test_a_purged_still_is_reported_not_failed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A still deleted by retention, with its ``evidence_purged`` tombstone: not in the
    package, listed as purged, and verify passes saying so."""
    built = build_case(tmp_path, purge_still=True)
    code, out, _ = verify(built.path, capsys=capsys)
    assert code == 0, out
    assert "[evidence_purged]" in out and "已按保存期限删除" in out
    without = built.write(tmp_path / "no-tombstone.zip", built.contents(built.events[:-2]))
    code, out, _ = verify(without, capsys=capsys)  # the tombstone (and what follows) cut
    assert code == 1 and "file_missing" in codes(out), out


def _zip(path: Path, members: list[tuple[zipfile.ZipInfo | str, bytes]], **kw: int) -> Path:
    with zipfile.ZipFile(path, "w", kw.get("compression", zipfile.ZIP_STORED)) as archive:
        for info, data in members:
            archive.writestr(info, data)
    return path


def _link() -> zipfile.ZipInfo:
    info = zipfile.ZipInfo("media/" + "0" * 64 + ".jpg")
    info.external_attr = 0o120777 << 16
    return info


def _patched(directory: Path, case: Case, signature: bytes, at: int, value: bytes | None) -> Path:
    """The package with bytes after the last ``signature`` replaced by ``value`` (or,
    for None, the central directory's offset moved 1000 bytes on, which puts the first
    local header before the start of the file)."""
    data = bytearray(case.path.read_bytes())
    start = data.rindex(signature) + at
    if value is None:
        value = (int.from_bytes(data[start : start + 4], "little") + 1000).to_bytes(4, "little")
    data[start : start + len(value)] = value
    path = directory / "patched.zip"
    path.write_bytes(data)
    return path


BAD_INPUTS: dict[str, Callable[[Path, Case], Path]] = {
    "missing-file": lambda d, c: d / "nothing.zip",
    "directory": lambda d, c: d,
    "not-a-zip": lambda d, c: (d / "x.zip", (d / "x.zip").write_text("not a zip"))[0],
    "cut-short": lambda d, c: (
        d / "cut.zip",
        (d / "cut.zip").write_bytes(c.path.read_bytes()[: c.path.stat().st_size // 2]),
    )[0],
    "no-manifest": lambda d, c: _zip(d / "m.zip", [("keys.json", b"{}")]),
    "dot-dot": lambda d, c: _zip(d / "t.zip", [("../evil.txt", b"x"), ("manifest.json", b"{}")]),
    "absolute": lambda d, c: _zip(d / "a.zip", [("/etc/evil", b"x"), ("manifest.json", b"{}")]),
    "symlink": lambda d, c: _zip(d / "l.zip", [(_link(), b"/etc/passwd")]),
    "unknown-zip-version": lambda d, c: _patched(d, c, b"PK\x01\x02", 6, b"\x63\x00"),
    "header-before-start": lambda d, c: _patched(d, c, b"PK\x05\x06", 16, None),
    "bomb": lambda d, c: _zip(
        d / "b.zip", [("manifest.json", b"\0" * 50_000_000)], compression=zipfile.ZIP_DEFLATED
    ),
}


@pytest.mark.parametrize("name", list(BAD_INPUTS))
def test_unusable_input_exits_2_and_writes_nothing(
    name: str, case: Case, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Not a package, cut short, path traversal, absolute names, links, a
    decompression bomb: exit 2, a Chinese reason on stderr, nothing written anywhere
    (the members are read in place, never extracted)."""
    path = BAD_INPUTS[name](tmp_path, case)
    before = sorted(tmp_path.rglob("*")), sorted(Path(tempfile.gettempdir()).iterdir())
    code, out, err = verify(path, capsys=capsys)
    assert code == 2, out + err
    assert err.startswith(("无法验证", "无法读取")) and "Traceback" not in err
    assert (sorted(tmp_path.rglob("*")), sorted(Path(tempfile.gettempdir()).iterdir())) == before
    assert not (tmp_path.parent / "evil.txt").exists()


def test_verify_runs_from_the_recorder_alone(case: Case) -> None:
    """``python -m recorder.verify`` imports no module of the control plane, media plane
    or pages (nor aiohttp), and exits 0 on the intact package."""
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "recorder.verify", str(case.path)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    imported = {line.rsplit("|", 1)[-1].strip() for line in done.stderr.splitlines()}
    top = {name.split(".")[0] for name in imported}
    assert not top & {"signaling", "media", "webui", "aiohttp", "aiortc"}, sorted(top)


def _covered(path: Path) -> list[tuple[int, int]]:
    return [(m.offset, m.offset + m.size) for m in Archive.open(path).members.values()]


@settings(
    max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_random_byte_changes_never_pass_or_crash(case: Case, data: st.DataObject) -> None:
    """Any byte of the package changed to any other value: verify either refuses the
    input (PackageError) or reports; never another exception; and when the byte lies
    in a member's data, it never reports the package intact."""
    original = case.path.read_bytes()
    ranges = _covered(case.path)
    inside = data.draw(st.booleans())
    if inside:
        lo, hi = data.draw(st.sampled_from(ranges).filter(lambda r: r[1] > r[0]))
        at = data.draw(st.integers(lo, hi - 1))
    else:
        at = data.draw(st.integers(0, len(original) - 1))
    value = data.draw(st.integers(0, 255).filter(lambda v: v != original[at]))
    with tempfile.TemporaryDirectory() as directory:
        changed = Path(directory) / "changed.zip"
        changed.write_bytes(original[:at] + bytes([value]) + original[at + 1 :])
        try:
            report = verify_package(Archive.open(changed), workers=1)
        except PackageError:
            return
    if any(lo <= at < hi for lo, hi in ranges):
        assert not report.ok, (at, value)


def test_a_chunk_after_an_altered_one_is_counted_afresh() -> None:
    """Chunks 0, 1, 2 of a track, 1 altered (not intact): chunk 2 is counted from its own
    first packet, so the altered chunk is the one problem, not also a loss in chunk 2."""
    found = {
        sha: Examined(
            {}, (list(range(10 * k, 10 * k + 10)), [(10 * k + i) * 66_000 for i in range(10)])
        )
        for k, sha in enumerate("abc")
    }
    honest = {sha: replay([(found[sha], True)])[0] for sha in "abc"}
    events = [
        AuditEvent(
            k,
            "case:X",
            k + 1,
            "",
            "chunk_closed",
            None,
            {"track": "t", "chunk": k, "sha256": sha, **honest[sha]},
            "",
            "",
        )  # type: ignore[dict-item]
        for k, sha in enumerate("abc")
    ]
    report = VerifyReport()
    media = SimpleNamespace(intact={"a", "c"}, found={s: found[s] for s in "ac"})
    check_tracks(media, events, report)  # type: ignore[arg-type]
    assert report.problems == []
