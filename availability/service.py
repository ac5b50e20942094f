"""POST /api/tenants/{tenantId}/availability: the request, the tenant's mode, the answer."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from availability import meeting_times
from availability.request import AvailabilityRequest, parse
from availability.schedule import ScheduleReader, view_minutes
from availability.slots import SlotQuery, find_slots
from shared.errors import WrongMode
from shared.graph import GraphClient
from shared.http import rfc3339
from shared.members import MemberTokens
from shared.people import People
from shared.storage import Tenant, utcnow

log = logging.getLogger(__name__)


class AvailabilityService:
    def __init__(self, graph: GraphClient, members: MemberTokens, people: People | None = None) -> None:
        self.graph = graph
        self.members = members
        self.schedules = ScheduleReader(graph)
        self.people = people or People(graph)

    def answer(self, tenant: Tenant, body: dict[str, Any], *, now: datetime | None = None) -> dict[str, Any]:
        now = now or utcnow()
        request = parse(body, default_time_zone=tenant.defaultTimeZone, now=now)
        tenant.require_enabled()
        if tenant.mode == "delegated":
            if request.buffer:
                raise WrongMode("bufferMinutes is not available in delegated mode (findMeetingTimes cannot "
                                "honour it).", target="bufferMinutes")
            token = self.members.access_token(tenant.tenantId, request.organizer)
            slots, reason = meeting_times.find(self.graph, tenant.tenantId, token, request, now=now)
            participants = [{"email": email, "status": "ok"} for email in request.participants]
        else:
            slots, reason, participants = self.domain(tenant, request, now)
        return {"mode": tenant.mode, "timeZone": request.time_zone,
                "slots": [{"start": rfc3339(s), "end": rfc3339(e)} for s, e in slots],
                "participants": participants, "emptyReason": reason}

    def domain(self, tenant: Tenant, request: AvailabilityRequest,
               now: datetime) -> tuple[list[tuple[datetime, datetime]], str | None, list[dict[str, Any]]]:
        organizer = self.people.organizer(tenant.tenantId, request.organizer)
        # Graph is asked by SMTP address (getSchedule takes no object id); answers name people as
        # the caller did. The organizer's address may also be among the attendees.
        addresses = {name: (organizer.address if name == request.organizer else name) for name in request.participants}
        distinct = list(dict.fromkeys(addresses.values()))
        # Asked for the window widened by the buffer, so busy time just outside it counts.
        minutes = view_minutes(request.step_minutes, request.duration // timedelta(minutes=1),
                               request.buffer // timedelta(minutes=1))
        schedules = self.schedules.read(tenant.tenantId, organizer, distinct,
                                        request.start - request.buffer, request.end + request.buffer,
                                        cell_minutes=minutes)
        participants = []
        for name, address in addresses.items():
            reason = schedules[address].reason
            participants.append({"email": name, "status": "ok"} if reason is None
                                else {"email": name, "status": "unavailable", "reason": reason})
        available = [schedules[a].participant() for a in distinct if schedules[a].reason is None]
        unavailable = len(available) < len(distinct)
        if schedules[organizer.address].reason is not None:
            return [], "participant_unavailable", participants
        query = SlotQuery(start=request.start, end=request.end, duration=request.duration,
                          step_minutes=request.step_minutes, buffer=request.buffer, max_slots=request.max_slots,
                          zone=request.zone, respect_working_hours=request.respect_working_hours,
                          tentative_as_busy=request.tentative_as_busy, now=now)
        result = find_slots(available, query, unavailable=unavailable)
        return result.slots, result.empty_reason, participants
