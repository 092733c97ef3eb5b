"""What the console calls things: Chinese first, the board's English beside it."""

from __future__ import annotations

STATUS = {
    "reported": "已上报 reported", "verifying": "待核实 verifying",
    "registered": "已立案 registered", "rejected": "不予立案 rejected",
    "dispatched": "已交办 dispatched", "accepted": "已签收 accepted",
    "returned": "已退单 returned", "in_progress": "处置中 in progress",
    "handled": "已办结 handled", "checking": "核查中 checking", "rework": "返工 rework",
    "closed": "已结案 closed", "reopened": "重办 reopened", "evaluated": "已评价 evaluated",
    "merged": "已合并 merged",
}
ASSIGNMENT_STATUS = {
    "dispatched": "待签收 to claim", "accepted": "已签收 claimed",
    "in_progress": "处置中 in progress", "returned": "已退单 returned",
    "handled": "已办结 handled", "cancelled": "已撤回 cancelled",
}
ROLE = {"lead": "牵头 lead", "support": "配合 support"}
PRIORITY = {1: "P1 特急", 2: "P2 紧急", 3: "P3 一般", 4: "P4 复杂"}
LEVEL = {1: "市 city", 2: "县(区) county", 3: "乡镇(街道) township", 4: "社区(村) community",
         5: "网格 grid"}
STEP = {
    "accept": "签收 accept", "on_site": "到场 on site", "first_control": "初步控制 first control",
    "resolve": "办结 resolve", "progress": "进展反馈 progress", "feedback": "反馈核查 feedback",
    "ladder": "层级时限 level limit", "verify": "核实 verify",
}
EVENT = {
    "case_opened": "立案受理 case opened", "event_linked": "关联 report linked",
    "priority_changed": "改等级 priority changed", "case_registered": "核实立案 registered",
    "case_rejected": "不予立案 rejected", "assignment_dispatched": "交办 dispatched",
    "assignment_cancelled": "撤回 cancelled", "assignment_claimed": "签收 claimed",
    "assignment_returned": "退单 returned", "ruling_requested": "待裁定 ruling requested",
    "ruling_made": "已裁定 ruled", "progress_reported": "进展 progress",
    "on_site_reported": "到场 on site", "extension_requested": "申请延期 extension asked",
    "extension_approved": "延期批准 extension approved",
    "extension_denied": "延期驳回 extension denied", "case_suspended": "挂起 suspended",
    "case_resumed": "恢复 resumed", "assignment_handled": "部门办结 handled",
    "case_handled": "办结 handled", "check_started": "核查 check started",
    "case_closed": "结案 closed", "rework_ordered": "返工 rework", "case_evaluated":
    "回访评价 evaluated", "case_reopened": "重办 reopened", "yellow_card": "黄牌 yellow card",
    "red_card": "红牌 red card", "supervised": "督办 supervised", "escalated": "上报 escalated",
    "deescalated": "回退 de-escalated", "case_absorbed": "合并 absorbed a case",
    "case_merged": "已合并 merged", "events_split": "拆分 split",
    "absorb_released": "合并撤回 merge undone", "event_forwarded": "转关联 report forwarded",
}
SATISFACTION = {"satisfied": "满意 satisfied",
                "basically_satisfied": "基本满意 basically satisfied",
                "dissatisfied": "不满意 dissatisfied", "unreached": "未接通 unreached"}
#: reason codes a department returns an assignment with (退单原因)
RETURN_REASONS = {
    "not_ours": "不属本部门职责 not our duty",
    "wrong_region": "不属本辖区 outside our jurisdiction",
    "insufficient_info": "信息不全 not enough information",
    "duplicate": "重复件 a duplicate",
    "other": "其他 other",
}
ROLE_NAMES = {"operator": "综治中心值班员 operator", "department": "职能部门 department",
              "administrator": "管理员 administrator", "display": "大屏 display"}

__all__ = ["ASSIGNMENT_STATUS", "EVENT", "LEVEL", "PRIORITY", "RETURN_REASONS", "ROLE",
           "ROLE_NAMES", "SATISFACTION", "STATUS", "STEP"]
