"""Chinese text users read, by stable error code, and names of fields and states."""

from __future__ import annotations

from typing import Any

from recorder.problem_text import PROBLEM_TEXT

FIELDS = {
    "username": "用户名",
    "password": "密码",
    "display_name": "姓名",
    "role": "角色",
    "outlet": "所属网点",
    "department": "所属部门",
    "jurisdiction": "所属行政区划",
    "parent": "上级行政区划",
    "old_password": "原密码",
    "new_password": "新密码",
    "confirm_password": "确认新密码",
    "matter": "事项",
    "applicant_name": "申请人姓名",
    "id_number": "居民身份证号",
    "phone": "联系电话",
    "notes": "备注",
    "code": "编码",
    "name": "名称",
    "time_limit_days": "办理时限",
    "mode": "审批模式",
    "retention_years": "保存期限",
    "materials": "申请材料",
    "catalog": "目录文件",
    "jurisdictions": "行政区划",
    "outlets": "通办网点",
    "departments": "审批部门",
    "matters": "事项",
    # review actions
    "consent": "知情同意",
    "material": "申请材料",
    "mark": "审查结果",
    "comment": "说明",
    "outcome": "审批结果",
    "reason": "理由",
    "score": "评价",
    "participant": "参会人员",
    "source": "画面来源",
    "format": "图片格式",
    # case search
    "q": "查询内容",
    "status": "状态",
    "approver": "审批人员",
    "from": "起始日期",
    "to": "结束日期",
    "decision": "审批结果",
    "rating": "评价",
    "gaps": "录像缺口",
    "overdue": "超期",
    "sort": "排序",
    "order": "排序方向",
    "page": "页码",
    "per_page": "每页条数",
    # supervision dashboard
    "period": "统计周期",
    "group": "分组方式",
}

MESSAGES = {
    "bad_json": "请求内容不是有效的 JSON。",
    "bad_form": "提交的表单无法识别。",
    "field_required": "请填写{field}。",
    "field_too_long": "{field}过长，最多 {max} 个字符。",
    "field_invalid": "{field}格式不正确。",
    "field_out_of_range": "{field}应在 {low} 到 {high} 之间。",
    "invalid_id_number": "居民身份证号无效，请核对（18 位，含校验位）。",
    "unknown_outlet": "所属网点不存在。",
    "unknown_department": "所属部门不存在。",
    "unknown_jurisdiction": "行政区划不存在。",
    "jurisdiction_cycle": "上级行政区划不能是该区划本身或其下级。",
    "unknown_matter": "事项不存在或已停用。",
    "username_taken": "用户名已被使用。",
    "password_too_weak": "密码至少 {min} 位，且须同时包含字母和数字。",
    "wrong_password": "原密码不正确。",
    "password_mismatch": "两次输入的新密码不一致。",
    "password_unchanged": "新密码不能与原密码相同。",
    "cannot_disable_self": "不能停用自己的账户。",
    "bad_credentials": "用户名或密码错误。",
    "account_disabled": "账户已停用，请联系管理员。",
    "too_many_attempts": "登录尝试过于频繁，请稍后再试。",
    "too_many_searches": "按身份证号查询过于频繁，请稍后再试。",
    "id_search_not_allowed": "您的角色不能按身份证号查询案件，请按案件编号或申请人姓名查询。",
    "not_authenticated": "请先登录。",
    "session_expired": "登录已失效，请重新登录。",
    "csrf_failed": "页面已过期或请求来源不可信，请刷新页面后重试。",
    "password_change_required": "请先修改初始密码。",
    "wrong_role": "您的角色无权进行此操作。",
    "out_of_scope": "该对象不在您的管辖范围内。",
    "not_found": "页面或资源不存在。",
    "case_not_found": "案件不存在。",
    "export_not_found": "导出任务不存在。",
    "export_not_ready": "证据包尚未生成完毕。",
    "export_expired": "该证据包已超过保留时间被删除，请重新导出。",
    "export_running": "您已有一个正在进行的导出任务，请等待其完成。",
    "export_failed": "证据包导出失败，请联系管理员查看服务日志。",
    "matter_not_found": "事项不存在。",
    "user_not_found": "用户不存在。",
    "outlet_not_found": "网点不存在。",
    "department_not_found": "部门不存在。",
    "method_not_allowed": "不支持该请求方法。",
    "payload_too_large": "请求内容过大。",
    "internal_error": "服务器内部错误，请稍后再试。",
    "date_range_reversed": "开始日期不能晚于结束日期。",
    "date_range_too_long": "统计区间最长 {max} 天，请缩短后重试。",
    # review sessions
    "session_not_found": "审办会话不存在。",
    "session_exists": "该案件已有进行中的审办会话。",
    "already_taken": "该会话已被其他审批人员接入。",
    "session_cancelled": "窗口人员已取消该会话。",
    "session_timed_out": "该会话等待超时，已自动结束。",
    "session_ended": "该会话已结束。",
    "session_state": "会话当前状态不允许此操作。",
    "session_not_ready": "该会话正在登记当事人同意，尚未进入排队，请稍后再试。",
    "not_session_approver": "只有接入该会话的审批人员可以进行此操作。",
    "same_department": "联审须邀请其他部门的审批人员。",
    "no_such_approver": "没有该用户名的审批人员。",
    "bad_date_range": "起始日期不能晚于结束日期。",
    "unknown_approver": "被邀请的审批人员不存在或不属于该部门。",
    "token_expired": "入会凭证已过期，请刷新页面。",
    "token_invalid": "入会凭证无效。",
    "token_used": "入会凭证已使用过，请刷新页面重新获取。",
    # signalling protocol
    "join_timeout": "未在规定时间内加入会话。",
    "out_of_order": "消息顺序不正确。",
    "protocol_bad_json": "消息不是有效的 JSON 对象。",
    "protocol_too_large": "消息过大。",
    "protocol_bad_version": "消息协议版本不受支持。",
    "protocol_unknown_type": "未知的消息类型。",
    "protocol_bad_field": "消息字段缺失或格式不正确。",
    "protocol_too_long": "消息内容过长。",
    "rate_limited": "发送过于频繁，部分消息已被忽略。",
    "not_allowed": "您在本会话中无权进行此操作。",
    "not_live": "会话尚未开始，请等待审批人员接入。",
    "server_restart": "服务器正在重启，稍后将自动重新连接。",
    "media_failed": "音视频连接中断，正在重新连接。",
    "approvers_left": (
        "审批人员已离开本次审办。可点击“重新排队”，将本会话放回部门队列，"
        "由其他审批人员接入继续审办（案件和已有记录保留）。"
    ),
    "clerk_left": "窗口人员已离开本次审办（{reason}）。",
    "approver_present": "审批人员仍在会话中，不能重新排队。",
    "login_ended": "您的登录已失效（{reason}），连接已断开，请重新登录。",
    "source_not_allowed": "您无权发布该音视频源。",
    "bad_sdp": "音视频协商信息（SDP）无效。",
    "bad_publish_map": "发布的音视频源与协商信息不一致。",
    # document stills (高拍仪照片) and snapshots
    "no_document_grant": "只有发布高拍仪画面的窗口人员可以上传照片。",
    "still_not_live": "只有进行中的审办会话可以拍摄照片。",
    "still_bad_content_type": "照片格式不受支持，仅支持 JPEG、PNG 或 WebP。",
    "still_not_image": "上传的内容不是图片（仅支持 JPEG、PNG 或 WebP）。",
    "still_type_mismatch": "照片的实际格式与声明的类型不一致。",
    "still_bad_hash": "缺少照片的 SHA-256 校验值，或校验值格式不正确。",
    "hash_mismatch": "照片内容与校验值（SHA-256）不一致，可能在传输中损坏，请重新拍摄。",
    "still_too_large": "照片过大，最大 {max_mb} MB。",
    "still_too_many_pixels": "照片像素过多，无法处理。",
    "still_undecodable": "照片已损坏或不完整，无法解码。",
    "unknown_material": "该材料不属于本案件办理事项的申请材料。",
    "unknown_still_request": "拍照请求不存在或不属于本会话。",
    "still_not_found": "照片不存在。",
    "disk_full": "服务器存储空间不足，照片未能保存，请联系管理员。",
    "store_failed": "照片未能保存，请重试。",
    "track_not_found": "该参会人员当前没有发布此画面。",
    "snapshot_not_video": "只能截取视频画面。",
    "snapshot_timeout": "未能在规定时间内取得画面，请稍后重试。",
    "track_ended": "画面已中断，请稍后重试。",
    "snapshot_undecodable": "画面无法解码，请稍后重试。",
    "recording_failed": "录像保存失败（{reason}），审办可继续进行，请尽快通知管理员处理。",
    "state_waiting": "正在等待审批人员接入。",
    "state_live": "审批人员已接入，审办进行中。",
    "state_ended": "审办会话已结束。",
    "state_cancelled": "会话已取消。",
    "state_timed_out": "长时间无人接入，会话已超时结束，请稍后重新发起。",
    # review actions and evidence
    "consent_required": "开始审办前须向申请人告知录音录像并取得其同意（勾选“申请人已同意”）。",
    "consent_outdated": "告知书已更新，请刷新页面后向申请人重新告知。",
    "decision_exists": "该案件已作出审批决定，不能重复决定。",
    "rating_exists": "本次审办已评价，不能重复评价。",
    "followup_not_found": "本次审办没有差评回访事项。",
    "followup_not_open": "该回访事项已办理或已进入下一阶段，请刷新页面。",
    "not_session_clerk": "只有发起该会话的窗口人员可以提交评价。",
    "evidence_not_found": "证据文件不存在。",
    "evidence_missing": "证据文件已登记但存储中缺失，请联系管理员核查。",
    "evidence_purged": "该证据文件已按保存期限删除（删除记录保留在审计日志中）。",
    # the audit log (recorder.errors.LogError codes) and what verification finds
    "log_tampered": (
        "审计日志与已签名的检查点（数据库或见证文件中）不一致，可能已被篡改，已停止签名。"
    ),
    "checkpoint_race": "其他进程持续签署更新的检查点，本次未能签名，请稍后重试。",
    "log_truncated": "审计日志条目少于已签名检查点所含条目，可能已被删除。",
    "log_gap": "审计日志序号不连续，可能有条目被删除。",
    "stale_node_key": "节点签名密钥已被轮换替代，请使用当前密钥文件。",
    "no_signing_key": "没有可用的节点签名密钥。",
    "bad_tree_size": "请求的日志范围超出当前日志。",
    "bad_detail": "审计事件内容无法规范化。",
    "witness_unwritten": "检查点已签名并保存，但未能写入见证文件；下次签名时将补写。",
    # integrity check and retention (the auditor's side)
    "hold_exists": "该案件已处于法律保全状态。",
    "not_on_hold": "该案件未处于法律保全状态。",
    "retention_running": "保存期限清理正在进行，请在清理结束后再试。",
}

EVIDENCE_ROLE_NAMES = {
    "capture": "采集分段",
    "playable": "可播放录像",
    "still": "材料照片",
    "snapshot": "画面截图",
}

RECORDING_FAILURES = {
    "disk_full": "存储空间已满",
    "write_failed": "写入录像文件出错",
    "store_failed": "录像文件入库出错",
}

CLERK_LEAVE_REASONS = {
    "hangup": "已挂断",
    "grace_expired": "网络中断后未能重新连接",
    "": "不在会话中",
}
"""Why a participant left, as ``clerk_left`` says it."""

LOGIN_END_REASONS = {
    "logout": "已退出登录",
    "password_changed": "密码已修改",
    "password_reset": "密码已被管理员重置",
    "account_disabled": "账户已被停用",
    "expired": "登录已过期",
}
"""Why a login session ended, as ``login_ended`` says it (its sockets close)."""

ROLE_NAMES = {"clerk": "窗口人员", "approver": "审批人员", "auditor": "监察人员", "admin": "管理员"}
MODE_NAMES = {
    "remote_approval": "通办地受理、归属地审批",
    "local_approval": "通办地受理、通办地审批",
}
SESSION_STATE_NAMES = {
    "waiting": "排队等待中",
    "live": "审办进行中",
    "ended": "已结束",
    "cancelled": "已取消",
    "timed_out": "等待超时",
}
CASE_STATUS_NAMES = {
    "accepted": "已受理",
    "reviewing": "审查中",
    "approved": "已批准",
    "rejected": "不予批准",
    "supplement": "待补正",
}


MARK_NAMES = {"complete": "齐全", "missing": "缺失", "unclear": "不清晰"}
OUTCOME_NAMES = {"approve": "通过", "reject": "不予受理", "supplement": "补正"}
SCORE_NAMES = {
    "very_satisfied": "非常满意",
    "satisfied": "满意",
    "basically_satisfied": "基本满意",
    "dissatisfied": "不满意",
    "very_dissatisfied": "非常不满意",
}
FOLLOWUP_STAGE_NAMES = {"verify": "回访核实", "rectify": "整改"}
EVENT_NAMES = {
    "case_created": "创建案件",
    "case_viewed": "监察查阅案件",
    "supervision_exported": "导出监察统计",
    "evidence_viewed": "监察查阅证据文件",
    "case_exported": "导出证据包",
    "recording_viewed": "监察回放录像",
    "session_started": "发起审办会话",
    "session_accepted": "审批人员接入",
    "session_cancelled": "取消会话",
    "session_timed_out": "会话等待超时",
    "session_requeued": "重新排队（审批人员已离开）",
    "session_ended": "会话结束",
    "session_interrupted": "会话中断",
    "co_review_invited": "邀请联审",
    "co_review_joined": "加入联审",
    "participant_joined": "加入会话",
    "participant_rejoined": "重新加入会话",
    "participant_reconnecting": "网络中断，等待重连",
    "participant_left": "离开会话",
    "auditor_joined": "监察旁听",
    "chat": "文字交流",
    "consent_recorded": "记录申请人知情同意",
    "material_marked": "标记申请材料",
    "decision_recorded": "作出审批决定",
    "rating_recorded": "申请人评价",
    "followup_opened": "差评回访立项",
    "followup_verified": "差评回访核实",
    "followup_rectified": "差评整改完成",
    "recording_gap": "录制缺口",
    "track_started": "开始录制音视频轨道",
    "track_ended": "音视频轨道结束",
    "chunk_closed": "录制分段封存",
    "chunk_recovered": "中断后恢复录制分段",
    "playable_derived": "生成可播放录像",
    "conversion_failed": "录像转换失败",
    "recording_failed": "录制失败",
    "still_requested": "请求拍摄材料照片",
    "still_captured": "上传材料照片",
    "snapshot_taken": "截取画面存证",
    "log_resealed": "审计日志重新封存（格式升级）",
    "key_rotated": "更换节点签名密钥",
    "key_registered": "登记未经轮换的新节点签名密钥（密钥文件被替换）",
    "login": "登录",
    "logout": "退出登录",
    "login_failed": "登录失败",
    "login_throttled": "登录尝试受限",
    "login_locked": "登录地址暂停",
    "login_refused_disabled": "停用账户尝试登录",
    "account_unlocked": "解除登录限制",
    "password_changed": "修改密码",
    "password_change_failed": "修改密码时原密码错误",
    "password_change_throttled": "修改密码尝试受限",
    "password_reset": "重置密码",
    "user_created": "创建账户",
    "user_disabled": "停用账户",
    "user_enabled": "启用账户",
    "access_denied": "越权访问被拒绝",
    "catalog_imported": "导入事项目录",
    "matter_enabled": "启用事项",
    "matter_disabled": "停用事项",
    "integrity_checked": "证据完整性校验",
    "legal_hold_placed": "设置法律保全",
    "legal_hold_lifted": "解除法律保全",
    "evidence_purged": "按保存期限删除媒体文件",
    "retention_run": "保存期限清理",
}


def span_text(seconds: int) -> str:
    """A length of time as people say it: "45 秒", "3 分 20 秒", "2 小时 5 分", "3 天 4 小时"."""
    minutes, sec = divmod(max(0, seconds), 60)
    hours, minutes = divmod(minutes, 60)
    days, hours = divmod(hours, 24)
    if days:
        return f"{days} 天 {hours} 小时"
    if hours:
        return f"{hours} 小时 {minutes} 分"
    return f"{minutes} 分 {sec} 秒" if minutes else f"{sec} 秒"


def problem_name(code: str) -> str:
    """A problem code of the integrity check or of verify, in Chinese (their texts live
    in the recorder, which the offline verifier uses alone)."""
    return PROBLEM_TEXT.get(code) or MESSAGES.get(code, code)


def message(code: str, params: dict[str, Any] | None = None) -> str:
    values = dict(params or {})
    if "field" in values:
        values["field"] = FIELDS.get(str(values["field"]), str(values["field"]))
    try:
        return MESSAGES[code].format(**values)
    except (KeyError, IndexError):
        return MESSAGES.get(code, MESSAGES["internal_error"])
