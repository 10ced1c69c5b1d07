"""Chinese text for every problem code that log and evidence verification report
(recorder/logverify.py, recorder/pkgverify.py). The recorder cannot import the control
plane, so the text lives here; signaling/web/messages.py includes it."""

from __future__ import annotations

PROBLEM_TEXT = {
    # the log
    "index_gap": "日志序号不连续（有条目被删除或插入）",
    "entry_altered": "条目内容与其哈希不符（内容被改动）",
    "chain_broken": "案件哈希链断裂（条目被删除、插入、调换或改动）",
    "root_mismatch": "按日志重算的默克尔树根与签名检查点不符（日志被改写）",
    "unknown_key": "签名密钥不在密钥登记表中",
    "key_not_valid": "签名时该密钥不在有效期内",
    "key_id_mismatch": "密钥编号与其公钥不符（密钥登记表被改动）",
    "untrusted_key": "签名密钥不是 --expect-key 给出的出具单位密钥",
    "bad_signature": "签名验证失败",
    "checkpoint_order": "检查点的规模或时间倒退",
    "inconsistent_checkpoints": "相邻检查点之间的一致性证明不成立",
    "witness_mismatch": "数据库中的日志与见证文件中签名的检查点不符（日志被改写或删减）",
    "checkpoint_missing": "见证文件中的检查点在数据库中已不存在（检查点被删除）",
    "witness_bad_signature": "见证文件中的检查点签名无法用其所附公钥验证",
    "witness_unreadable": "见证文件中有无法读取的行",
    "no_checkpoint": "有事件长时间未被任何签名检查点覆盖",
    # evidence files
    "file_missing": "文件缺失",
    "file_extra": "多出未登记的文件",
    "hash_mismatch": "文件哈希值不符（内容被改动）",
    "size_mismatch": "文件大小不符",
    "playable_not_reproducible": "可播放文件无法由其原始录制分段重新生成（二者不一致）",
    "still_mismatch": "材料图像与其登记事件不符（哈希、大小或分辨率）",
    "track_gap_unlogged": "录像轨道存在未登记的缺口",
    "not_in_checkpoint": "事件的包含证明不成立（不在签名检查点所覆盖的日志中）",
    "evidence_purged": "已按保存期限删除（有删除记录，不属篡改）",
    # export packages
    "manifest_unreadable": "清单 manifest.json 无法读取或格式不符",
    "document_unreadable": "证据包中的文件无法读取或格式不符",
    "event_unreadable": "事件记录无法读取或格式不符",
    "event_not_canonical": "事件记录不是 RFC 8785 规范 JSON",
    "wrong_chain": "事件不属于本案件（来自其他案件或系统日志）",
    "event_duplicated": "事件重复出现",
    "head_mismatch": "案件事件链的链头与预期不符（日志被截短或替换）",
    "tree_head_mismatch": "清单中的树头与最新签名检查点不符",
    "libav_version_differs": (
        "本机 libavformat 版本与生成可播放文件时不同，无法逐字节复现（仅提示）"
    ),
}

UNUSABLE_TEXT = {
    "not_a_package": "不是 coreview 证据包（或文件已损坏）",
    "unsafe_name": "含有不安全的文件名（绝对路径、..、反斜杠或控制字符）",
    "link_member": "含有符号链接",
    "compressed_member": "含有压缩的成员（coreview 证据包的成员均不压缩，以防解压炸弹）",
    "encrypted_member": "含有加密的成员",
    "bad_layout": "同一文件名出现多次",
    "too_large": "成员大小超出限制",
}
"""Why a package cannot be verified at all (recorder.pkgarchive.PackageError codes)."""
