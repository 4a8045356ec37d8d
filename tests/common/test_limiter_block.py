"""The block's arithmetic (services/common/inflight_block.py), without Redis."""

from __future__ import annotations

from services.common.inflight_block import Ask, Block, step_for

LATER = 100.0  # a lease that is still valid at now=0


def held(slots: int, *, step: int = 2, contended: bool = False) -> Block:
    block = Block(step=step)
    block.granted(slots, contended=contended, valid_until=LATER)
    return block


def test_the_step_is_a_small_share_of_the_cap() -> None:
    assert [step_for(cap) for cap in (1, 5, 31, 64, 2_000, 100_000)] == [1, 1, 1, 2, 62, 64]


def test_admits_against_the_block_only() -> None:
    block = held(2)
    assert [block.admit(0) for _ in range(3)] == [True, True, False]
    assert block.in_use == 2
    block.release()
    assert block.admit(0)


def test_a_lapsed_lease_admits_nothing() -> None:
    block = held(5)
    assert not block.admit(LATER)
    assert block.in_use == 0


def test_asks_for_what_is_needed_and_a_step_of_spare() -> None:
    block = held(2, step=3)
    block.admit(0)
    block.admit(0)
    block.waiting = 4
    assert block.ask() == Ask(in_use=2, need=6, spare=3, upto=2)


def test_an_idle_block_asks_for_nothing() -> None:
    block = held(4)
    assert block.ask() == Ask(in_use=0, need=0, spare=0, upto=4)
    block.granted(4, contended=False, valid_until=LATER)  # its answer
    block.admit(0)
    block.release()
    block.busy = False  # a renewal passed with no request since
    assert block.ask() == Ask(in_use=0, need=0, spare=0, upto=4)


def test_a_busy_block_keeps_its_spare_between_requests() -> None:
    block = held(4)
    block.admit(0)
    block.release()
    assert block.ask() == Ask(in_use=0, need=0, spare=2, upto=4)


def test_contention_drops_the_spare() -> None:
    block = held(4, contended=True)
    block.admit(0, answered=True)
    assert block.ask() == Ask(in_use=1, need=1, spare=0, upto=4)


def test_contended_a_new_request_goes_through_redis() -> None:
    block = held(4, contended=True)
    assert not block.admit(0)
    assert block.admit(0, answered=True)


def test_spare_goes_back_beyond_twice_the_step() -> None:
    block = held(10, step=2)
    for _ in range(10):
        block.admit(0)
    # 5 released: spare 5 > 4.
    assert [block.release() for _ in range(5)] == [False, False, False, False, True]


def test_waiting_requests_are_not_spare() -> None:
    block = held(10, step=2)
    for _ in range(10):
        block.admit(0)
    block.waiting = 5
    assert not any(block.release() for _ in range(5))


def test_contended_every_freed_slot_goes_back() -> None:
    block = held(3, contended=True)
    for _ in range(3):
        block.admit(0, answered=True)
    assert block.release()


def test_a_lost_answer_admits_against_what_was_in_use_and_replaces_the_most() -> None:
    growing = held(2)
    growing.failed(Ask(in_use=2, need=5, spare=2, upto=2))
    assert (growing.held, growing.upto) == (2, 7)
    shrinking = held(8)
    shrinking.failed(Ask(in_use=1, need=1, spare=2, upto=8))
    assert (shrinking.held, shrinking.upto) == (1, 8)
    assert shrinking.ask().upto == 8


def test_idle_means_nothing_in_use_and_nothing_worth_renewing() -> None:
    block = held(3)
    assert not block.idle(0)
    assert block.idle(LATER)  # the lease lapsed
    block.admit(0)
    assert not block.idle(LATER)
    block.release()
    block.forget()
    assert block.idle(0)


def test_nothing_more_is_admitted_while_an_exchange_may_shrink_the_block() -> None:
    block = held(10)
    block.admit(0)
    block.admit(0)
    block.ask()  # on its way: the answer keeps at least the 2 in use
    assert not block.admit(0)
    block.release()
    assert block.admit(0)  # a freed one may be reused
    block.granted(4, contended=False, valid_until=LATER)
    assert block.admit(0)
