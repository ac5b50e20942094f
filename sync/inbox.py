"""The Graph notification route's work: recognise each item, queue it, answer fast.

Microsoft expects an answer within 3 seconds and delivers again on a 5xx
(learn.microsoft.com/graph/change-notifications-delivery-webhooks, "Processing the change
notification"). So the route does no Graph or Key Vault call: an item is recognised by its
clientState (one table read, compared as a hash in constant time, sync/subscriptions.py) and
queued (gathered with the items of deliveries arriving at the same moment into as few queue
messages as fit, shared/queues.py `Coalescer`); anything unknown or forged is dropped and logged
without its values. If an item cannot be queued the answer is 503, and Microsoft delivers the
collection again (the queue's consumers record each booking change once, so a second delivery
adds nothing).
"""

from __future__ import annotations

import json
import logging
from typing import Any

log = logging.getLogger(__name__)

NOTIFICATION = "sync.notification"
LIFECYCLE = "sync.lifecycle"
LIFECYCLE_EVENTS = frozenset({"reauthorizationRequired", "subscriptionRemoved", "missed"})


class QueueUnavailable(Exception):
    pass


async def accept(body: bytes, recogniser: Any, queue: Any) -> dict[str, int]:
    """Queue every recognised item of a `changeNotificationCollection`; counts of what happened.
    Raises ValueError for a body that is not one, QueueUnavailable when queueing failed. Runs on
    the worker's event loop."""
    try:
        collection = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise ValueError("not JSON") from None
    items = collection.get("value") if isinstance(collection, dict) else None
    if not isinstance(items, list):
        raise ValueError("no value list")
    counts = {"queued": 0, "dropped": 0}
    messages = []
    for item in items:
        try:
            message = await _message(item, recogniser)
        except Exception as error:  # storage unreachable: Graph must deliver again
            log.warning("could not check a notification (%s): answering 503", type(error).__name__)
            raise QueueUnavailable from None
        if message is None:
            counts["dropped"] += 1
        else:
            messages.append(message)
    try:
        # Gathered with the items other deliveries bring at the same moment into as few queue
        # messages as fit: under a burst, answers stop waiting on one queue put each.
        await queue.send_together(messages)
    except Exception as error:
        log.warning("could not queue a notification (%s): answering 503", type(error).__name__)
        raise QueueUnavailable from None
    counts["queued"] = len(messages)
    if counts["dropped"]:
        log.warning("dropped %d notification item(s): unknown subscription or wrong clientState", counts["dropped"])
    return counts


async def _message(item: Any, recogniser: Any) -> dict[str, Any] | None:
    if not isinstance(item, dict):
        return None
    row = await recogniser.recognised(item.get("clientState"), item.get("subscriptionId"))
    if row is None:
        return None
    lifecycle = item.get("lifecycleEvent")
    if lifecycle is not None:
        if lifecycle not in LIFECYCLE_EVENTS:
            return None
        return {"kind": LIFECYCLE, "tenantId": row.tenantId, "mailboxKey": row.mailboxKey, "lifecycleEvent": lifecycle}
    data = item.get("resourceData")
    event_id = data.get("id") if isinstance(data, dict) else None
    if not isinstance(event_id, str) or not 0 < len(event_id) <= 512:
        return None
    change_type = item.get("changeType") if item.get("changeType") in ("created", "updated", "deleted") else "updated"
    return {"kind": NOTIFICATION, "tenantId": row.tenantId, "mailboxKey": row.mailboxKey, "eventId": event_id,
            "changeType": change_type}
