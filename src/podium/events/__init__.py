"""Live progress from the event log: wake-ups (:class:`WakeHub`), a run's log followed from
the database (:class:`EventFollower`), and the messages streams send (:class:`StreamEndView`).
"""

from podium.events.follower import (
    KEEPALIVE,
    PAGE_SIZE,
    EventFollower,
    EventLog,
    Item,
    Keepalive,
    StreamEnd,
    active_followers,
)
from podium.events.hub import Subscription, WakeHub, WakeSource
from podium.events.messages import StreamEndView

__all__ = [
    "KEEPALIVE",
    "PAGE_SIZE",
    "EventFollower",
    "EventLog",
    "Item",
    "Keepalive",
    "StreamEnd",
    "StreamEndView",
    "Subscription",
    "WakeHub",
    "WakeSource",
    "active_followers",
]
