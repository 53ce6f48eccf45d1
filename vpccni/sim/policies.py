"""The node policies ``vpccni bench fleet`` compares, each ipamd's code with different knobs.

* ``aws-like``: aws-node's behaviour on the points that decide a fleet boot, as its record shows them: no
  API budget of its own (every pass calls EC2 as soon as it wants to), the SDK's default retryer (four
  attempts, throttles backed off from 0.5 s), a pool loop that runs every 5 s and is not woken by ADDs,
  aws-node's shrink, and a subnet-full refusal that stops all growth for the cooldown (no ENI in another
  subnet). aws's record: 150 nodes took 15 min with RequestLimitExceeded (aws #405), one ENI per 15 s
  (#420), ~500 nodes polling caused throttling (#617, #887, #2730).
* ``vpccni``: ipamd's defaults: the per-node API budget with AIMD on throttles, ADDs wake the pool loop, a
  full subnet stops growth on its ENIs only.
* ``vpccni+fleet``: the same with the fleet budget on (``VPCCNI_FLEET_BUDGET``): every call reserves a
  token in the fleet's ledger, paced at 90 % of the account's documented buckets.
"""

from __future__ import annotations

from vpccni.cloud.retry import RetrySettings
from vpccni.sim.node import NodePolicy

FLEET_SHARE = 0.9

AWS_LIKE = NodePolicy(
    "aws-like", env={"VPCCNI_SHRINK": "aws"}, budget=False, poke=False,
    retry=RetrySettings(max_attempts=4, backoff_base_s=0.5, backoff_max_s=20.0),
    subnet_full_per_subnet=False)
VPCCNI = NodePolicy("vpccni")
VPCCNI_FLEET = NodePolicy("vpccni+fleet", fleet_share=FLEET_SHARE)

POLICIES = {p.name: p for p in (AWS_LIKE, VPCCNI, VPCCNI_FLEET)}
