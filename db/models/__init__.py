"""Every table, imported here so `SQLModel.metadata` and Alembic see the whole schema.
Each domain keeps its models in a module of its own."""

from db.models.announcements import Announcement, AnnouncementAck, AnnouncementDelivery
from db.models.core import AuditEntry, Member, MemberSkill, MemberWindow, ProcessedEvent
from db.models.pay import CapNotice, PayStatement, WeeklyCap
from db.models.policy import PolicyFaq, PolicyFeedback, PolicyQuestion, PolicyRevision
from db.models.referrals import LeaderboardOptIn, Referral
from db.models.shifts import Shift, ShiftIncident, ShiftMember, ShiftReminder
from db.models.vetting import Skill, SkillApplication, Welcome
from db.models.work import Assignment, Task, TimeEntry

__all__ = [
    "Announcement",
    "AnnouncementAck",
    "AnnouncementDelivery",
    "Assignment",
    "AuditEntry",
    "CapNotice",
    "LeaderboardOptIn",
    "Member",
    "MemberSkill",
    "MemberWindow",
    "PayStatement",
    "PolicyFaq",
    "PolicyFeedback",
    "PolicyQuestion",
    "PolicyRevision",
    "ProcessedEvent",
    "Referral",
    "Shift",
    "ShiftIncident",
    "ShiftMember",
    "ShiftReminder",
    "Task",
    "Skill",
    "SkillApplication",
    "TimeEntry",
    "Welcome",
    "WeeklyCap",
]
