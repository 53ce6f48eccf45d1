"""Named crash points: a test-only way to SIGKILL ipamd at an exact step of a multi-step change.

The restart tests must kill ipamd *between* two effects that together make one change: between an EC2
call and the datastore update that records it, between two EC2 calls of one ENI's life (create, attach,
DeleteOnTermination; detach, delete), and between the durable checkpoint commit of an ADD/DEL and its
reply. A signal sent from outside can only land at such a point by luck; a crash point lands there by
construction.

``VPCCNI_TEST_CRASH_AT=<point>:<n>`` arms one point: the n-th time ipamd reaches ``<point>`` it sends
itself SIGKILL (no cleanup, no flush: exactly what the OOM killer or a node crash does). Unset, every
:meth:`CrashPoints.reached` is one dict lookup. The variable is not part of
:class:`vpccni.config.settings.Settings` on purpose: it is not a user setting and ``vpccni config --explain``
must not offer it. A malformed value is still a startup error (exit status 2), like any bad variable.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Mapping

from vpccni.errors import ConfigError, ConfigProblem

ENV = "VPCCNI_TEST_CRASH_AT"

# Every point ipamd has, so a typo in a test is a startup error rather than a test that never crashes.
POINTS = frozenset({
    # reconciler: grow an existing ENI
    "grow.assign.before_ec2",
    "grow.assign.after_ec2",  # EC2 assigned, the datastore does not know yet
    # reconciler: a new ENI
    "grow.eni.after_create",  # created, not attached (leaked-ENI GC's case)
    "grow.eni.after_attach",  # attached, DeleteOnTermination not set (adoption's case)
    "grow.eni.after_dot",  # attached with DOT, not in the datastore
    "grow.eni.after_datastore",
    # reconciler: shrink
    "shrink.release.after_datastore",  # out of the datastore, still on the ENI in EC2
    "shrink.release.after_ec2",
    "shrink.eni.after_datastore",  # out of the datastore, still attached
    "shrink.eni.after_detach",  # detached, not deleted (leaked-ENI GC's case)
    "shrink.eni.after_delete",
    # reconciler: EC2 sync
    "sync.after_describe",
    # server: the checkpoint holds the change, the client has no answer
    "server.after_commit",
    "server.add.before_reply",  # an ADD's assignment is durable, plumbing/reply not done
    "server.del.before_release",  # a DEL is past its key lock, nothing released yet
})


class CrashPoints:
    """Which point is armed and how many times it has been reached."""

    def __init__(self, point: str | None = None, after: int = 1) -> None:
        if point is not None and point not in POINTS:
            raise ValueError(f"unknown crash point {point!r}")
        if after < 1:
            raise ValueError(f"a crash point fires on reach number >= 1, got {after}")
        self.point = point
        self.after = after
        self.reached_count = 0

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> CrashPoints:
        raw = (os.environ if env is None else env).get(ENV, "")
        if not raw:
            return cls()
        point, _, count = raw.partition(":")
        try:
            return cls(point, int(count) if count else 1)
        except ValueError:
            accepted = "<point>:<n> with n >= 1 and point one of " + ", ".join(sorted(POINTS))
            raise ConfigError([ConfigProblem(ENV, raw, accepted)]) from None

    @property
    def armed(self) -> bool:
        return self.point is not None

    def reached(self, point: str) -> None:
        """Mark ``point`` as reached; SIGKILL this process if it is the armed one's n-th time."""
        if point != self.point:
            return
        self.reached_count += 1
        if self.reached_count >= self.after:
            os.kill(os.getpid(), signal.SIGKILL)


NO_CRASH = CrashPoints()
