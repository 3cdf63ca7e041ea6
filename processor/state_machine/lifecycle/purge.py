"""Purge: forget a completed invocation (SPEC §3.6).

pre-status `completed`: → not found; the invocation, its journal, events and timers are deleted
  (`Transition(view=None, deleted=True)`); CancelTimer(all) so the leader forgets it too;
  reply 200 `{"status": "purged", "invocation_id"}`.
not found 404; every other status 409 (only completed invocations can be purged).
"""

from __future__ import annotations

from processor.actions import CancelTimer
from processor.commands import Purge
from processor.state_machine.lifecycle.common import reply
from processor.state_machine.types import ApplyContext, Transition
from processor.status import InvocationView

NOT_COMPLETED = "only completed invocations can be purged; kill or cancel it first"


def purge_completed(view: InvocationView, cmd: Purge, ctx: ApplyContext) -> Transition:
    tr = Transition(None, changed=True, deleted=True, actions=[CancelTimer(view.id, None)])
    tr.actions += reply(cmd.request_id, 200, {"status": "purged", "invocation_id": view.id})
    return tr
