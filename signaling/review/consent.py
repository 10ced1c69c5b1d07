"""The applicant's consent to recording (知情同意): the fixed text the clerk shows before
a session starts, its version and hash (the audit event carries both)."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

from signaling.web.errors import InvalidInput

CONSENT_VERSION = "2026.1"
CONSENT_TEXT = (
    "本次业务采用远程视频方式审查办理。为依法留存办理过程，审办期间的音视频、"
    "申请材料图像、文字交流和审批结果将全程录音录像并作为电子档案保存，"
    "仅用于本业务办理、监督检查和依法调取，不作他用。"
    "申请人已知悉上述内容，同意录音录像。"
)
CONSENT_SHA256 = hashlib.sha256(CONSENT_TEXT.encode("utf-8")).hexdigest()


def consent_json() -> dict[str, str]:
    return {"version": CONSENT_VERSION, "text": CONSENT_TEXT, "sha256": CONSENT_SHA256}


def check_consent(data: Mapping[str, Any]) -> None:
    """A session starts only with ``{"consent": true}`` (and, if given, the version
    of the text that was shown)."""
    if data.get("consent") is not True:
        raise InvalidInput("consent_required", field="consent")
    version = data.get("consent_version")
    if version is not None and version != CONSENT_VERSION:
        raise InvalidInput("consent_outdated", field="consent")
