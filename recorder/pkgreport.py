"""What checking a package finds (recorder/pkgverify.py) and what its media check
counted (recorder/pkgmedia.py): shared by both, so neither imports the other for them."""

from __future__ import annotations

from dataclasses import dataclass, field

from recorder.logverify import Problem


@dataclass(frozen=True)
class MediaReport:
    files: int
    bytes: int


@dataclass
class VerifyReport:
    case_no: str | None = None
    problems: list[Problem] = field(default_factory=list)
    warnings: list[Problem] = field(default_factory=list)
    purged: list[Problem] = field(default_factory=list)
    files: int = 0
    bytes: int = 0
    events: int = 0
    checkpoints: int = 0
    key_id: str | None = None
    head: str | None = None

    @property
    def ok(self) -> bool:
        return not self.problems
