"""The one interface between the middleware and the EC2 semantics: a handler per action.

A handler runs under the state lock with the parsed request and decides one of:

- raise :class:`~vpccni.localcloud.ec2.query.Ec2ApiError`: the client gets that EC2 error;
- return :class:`Answer`: the handler changed state itself and built the response;
- return :class:`Forward`: moto serves the (possibly rewritten) request; ``after`` then runs, still
  under the lock, on moto's successful response body — to adjust state moto cannot express and to
  patch the XML to match EC2.

Actions without a handler go to moto unchanged.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from vpccni.localcloud.ec2.query import QueryRequest
from vpccni.localcloud.ec2.state import Ec2State


@dataclass(frozen=True)
class Ec2Context:
    """What a handler may use: the state window and the seeded RNG for address choice."""

    state: Ec2State
    rng: random.Random


@dataclass(frozen=True)
class Answer:
    body: bytes  # a complete EC2 XML response (HTTP 200)


@dataclass(frozen=True)
class Forward:
    request: QueryRequest
    after: Callable[[bytes], bytes] | None = None


Outcome = Answer | Forward
Handler = Callable[[Ec2Context, QueryRequest], Outcome]
HandlerTable = Mapping[str, Handler]
