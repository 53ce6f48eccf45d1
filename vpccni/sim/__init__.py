"""vpccni.sim: ipamd's own code, in process, in virtual time, over the local cloud's EC2 semantics.

A simulated node (:mod:`vpccni.sim.node`) is the real Datastore, Reconciler and pool decisions, driven on
a :class:`~vpccni.sim.vloop.VirtualTimeLoop`; its cloud calls go through the real AWS provider and boto3
into the local cloud's EC2 middleware in the same process (:mod:`vpccni.sim.ec2`), whose account-wide
buckets, latency and faults run on the same virtual clock.
Thousands of nodes boot in minutes of wall time (``vpccni bench fleet``); one node's recorded churn
replays under other settings (``vpccni tune``).

The one package of the library that imports ipamd (pyproject's import contracts say so): it runs
ipamd's code, it is never part of it, and ipamd never imports it.
"""
