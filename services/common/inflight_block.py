"""A worker's block of the cluster-wide in-flight slots: when to ask Redis, and for how many.

No I/O: the limiter (limiter.py) sends what `ask` says to Redis and reports the answer back with
`granted` or `failed`. A worker leases a block, admits requests against it locally and talks to
Redis only when the block is short, when it holds too much spare, and to renew the lease. Every
number here is a count of slots this worker holds in the shared sorted set; the sum over all
workers is what the Redis script keeps at or under the cap.
"""

from __future__ import annotations

from dataclasses import dataclass

# The spare a worker asks for beyond what it needs: cap/32 (62 of the aggregator's 2,000), so a
# handful of workers' spare stays a small part of the cap, and at most 64 so one block never
# grows large enough to matter to the others.
_STEP_SHARE = 32
_STEP_MAX = 64


def step_for(cap: int) -> int:
    return max(1, min(_STEP_MAX, cap // _STEP_SHARE))


@dataclass(frozen=True)
class Ask:
    in_use: int  # slots in use: always kept, so the requests they admitted stay counted
    need: int  # slots in use or waited for: granted first, up to the room left
    spare: int  # slots beyond need, so the next requests are admitted without a round trip
    upto: int  # how many of this worker's members may exist in Redis (all are replaced)


@dataclass
class Block:
    step: int
    held: int = 0  # slots leased to this worker, as of the last answer
    in_use: int = 0  # requests admitted against the block and not yet released
    waiting: int = 0  # requests waiting for an answer from Redis
    # Someone in the cluster was refused recently: hold no spare, give back every freed slot at
    # once and take a new one only through Redis (where no worker grows beyond its fair share),
    # so a worker without a block is not kept out by the others reusing theirs.
    contended: bool = False
    busy: bool = False  # a request was admitted since the last renewal
    valid_until: float = 0.0  # monotonic; the lease ends (counted from before the ask was sent)
    # While an exchange is on its way: the slots in use when it was asked, the most its answer is
    # sure to keep (it may shrink the block), so nothing is admitted beyond them meanwhile.
    asked_in_use: int | None = None
    # After an answer was lost (timeout) Redis may hold more of our members than `held`: the next
    # ask replaces that many, so none is left to expire on its own.
    upto: int = 0

    def admit(self, now: float, *, answered: bool = False) -> bool:
        """One request in, if the block has room; `answered`: right after an exchange granted it."""
        if self.contended and not answered:
            return False
        limit = self.held if self.asked_in_use is None else min(self.held, self.asked_in_use)
        # A lapsed lease may have been pruned and its slots given to others: ask again first.
        if self.in_use < limit and now < self.valid_until:
            self.in_use += 1
            self.busy = True
            return True
        return False

    def release(self) -> bool:
        """One admitted request done; True when the spare should go back to Redis now."""
        self.in_use -= 1
        return self.return_due()

    def return_due(self) -> bool:
        spare = self.held - self.in_use - self.waiting
        # Twice the step: a worker whose load wanders by a few requests does not ask every time.
        return spare > (0 if self.contended else 2 * self.step)

    def ask(self) -> Ask:
        need = self.in_use + self.waiting
        wanted = need > 0 or self.busy
        spare = self.step if wanted and not self.contended else 0
        self.asked_in_use = self.in_use
        return Ask(in_use=self.in_use, need=need, spare=spare, upto=max(self.held, self.upto))

    def granted(self, slots: int, *, contended: bool, valid_until: float) -> None:
        self.held = self.upto = slots
        self.asked_in_use = None
        self.contended = contended
        self.valid_until = valid_until

    def failed(self, asked: Ask) -> None:
        # The script may or may not have run: admit against the least it can have kept (the slots
        # in use when asked), so the cap holds either way, and replace the most next time.
        self.held = min(self.held, asked.in_use)
        self.upto = max(asked.upto, asked.need + asked.spare)
        self.asked_in_use = None

    def forget(self) -> None:
        """Give up a block that could not be returned: it expires in Redis with its lease."""
        self.held = 0

    def idle(self, now: float) -> bool:
        """Nothing in use, nothing waited for, and no block worth renewing."""
        return (
            self.in_use == 0 and self.waiting == 0 and (self.held == 0 or now >= self.valid_until)
        )
