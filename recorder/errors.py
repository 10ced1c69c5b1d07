"""Errors of the evidence plane.

EvidenceError          base; ``code`` is stable (users' text comes from the web layer)
├── StoreError         a file could not be stored or read (disk full, altered, missing)
├── IntegrityError     stored evidence does not match what the log says of it
└── LogError           the audit log refuses: bad detail, bad proof request, a stored log
                       that no longer matches its signed checkpoints, a stale key
"""

from __future__ import annotations


class EvidenceError(Exception):
    def __init__(self, code: str, detail: str = "") -> None:
        super().__init__(f"{code}: {detail}" if detail else code)
        self.code = code
        self.detail = detail


class StoreError(EvidenceError):
    pass


class IntegrityError(EvidenceError):
    pass


class LogError(EvidenceError):
    pass
