"""Futures of waiting requests and callers: resolved by actions, failed when the leader stops."""

from __future__ import annotations

import pytest

from processor.actions import Reply
from processor.leader.replies import LeaderStopped, Replies
from processor.status import Result


async def test_reply_resolves_only_its_own_request() -> None:
    replies = Replies()
    rid1, f1 = replies.new_request()
    rid2, f2 = replies.new_request()
    assert rid1 != rid2
    replies.reply(Reply(rid2, 202, {"status": "paused"}))
    replies.reply(Reply("rq-from-another-leader-1", 200))  # ignored
    assert f2.result() == Reply(rid2, 202, {"status": "paused"}) and not f1.done()
    assert replies.pending == 1


async def test_request_ids_differ_between_leaders() -> None:
    assert Replies().new_request()[0] != Replies().new_request()[0]


async def test_completion_wakes_every_waiter_of_the_invocation() -> None:
    replies = Replies()
    a, b = replies.wait_for_completion("inv_a"), replies.wait_for_completion("inv_a")
    other = replies.wait_for_completion("inv_b")
    gone = replies.wait_for_completion("inv_a")
    replies.forget_waiter("inv_a", gone)
    replies.notify("inv_a", Result(value=b"1"))
    assert a.result() == b.result() == Result(value=b"1")
    assert not other.done() and not gone.done()


async def test_stopping_fails_everything_still_waiting_and_later_requests() -> None:
    replies = Replies()
    _, request = replies.new_request()
    waiter = replies.wait_for_completion("inv_a")
    replies.stop("the leader of partition 0 stopped")
    for future in (request, waiter):
        with pytest.raises(LeaderStopped, match="partition 0 stopped"):
            future.result()
    with pytest.raises(LeaderStopped):
        replies.new_request()
    with pytest.raises(LeaderStopped):
        replies.wait_for_completion("inv_a")
