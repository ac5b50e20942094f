"""The erasure's markers and what it changes in a change's JSON (booking/erasure.py): pure parts."""

from __future__ import annotations

import copy

from booking.erasure import is_erased, marker, scrub_change

TENANT = "c1c2c3c4-0000-4000-8000-0000000000b1"
KEY = b"k" * 32


def test_a_marker_is_keyed_per_tenant_and_case_blind():
    grace = marker(KEY, TENANT, "Grace@Fabrikam.example ")
    assert grace == marker(KEY, TENANT.upper(), "grace@fabrikam.example")
    assert grace != marker(b"j" * 32, TENANT, "grace@fabrikam.example")  # another key: unlinkable
    assert grace != marker(KEY, "c1c2c3c4-0000-4000-8000-0000000000b2", "grace@fabrikam.example")
    assert is_erased(grace) and len(grace) == len("erased:") + 32 and "grace" not in grace


def test_no_address_or_object_id_reads_as_a_marker():
    for value in ("grace@fabrikam.example", "erased@fabrikam.example", "c1c2c3c4-0000-4000-8000-000000000002",
                  "", None, {"email": None}):
        assert not is_erased(value)


def test_a_change_loses_the_person_and_keeps_everyone_else():
    created = {"id": "chg_1", "type": "booking.created", "bookingId": "bk_1",
               "booking": {"organizer": "Grace@fabrikam.example",
                           "attendees": [{"email": "alan@fabrikam.example", "response": "accepted"},
                                         {"email": "grace@fabrikam.example", "response": "none"}]}}
    scrubbed = scrub_change(copy.deepcopy(created), {"grace@fabrikam.example"})
    assert scrubbed["booking"]["organizer"] == {"email": None, "erased": True}
    assert scrubbed["booking"]["attendees"] == [{"email": "alan@fabrikam.example", "response": "accepted"},
                                                {"email": None, "erased": True}]
    assert scrub_change(copy.deepcopy(created), {"ada@fabrikam.example"}) is None  # names nobody asked for
    assert scrub_change(scrubbed, {"grace@fabrikam.example"}) is None  # erased already


def test_a_member_change_loses_both_ids_whichever_named_the_member():
    change = {"type": "member.needs_reconnect", "userId": "0c8f6f3e-6f0e-4c1e-9d61-3a6c0d6b9e01",
              "email": "kim@contoso.example"}
    for named in ("kim@contoso.example", "0c8f6f3e-6f0e-4c1e-9d61-3a6c0d6b9e01"):
        assert scrub_change(dict(change), {named}) | {"type": ""} == {"type": "", "userId": None, "email": None,
                                                                      "erased": True}
    assert scrub_change({"type": "tenant.status_changed", "status": "enabled"}, {"kim@contoso.example"}) is None
