"""What ipamd holds and must not lose: the datastore (ENIs -> CIDRs -> addresses, keyed assignments,
cooldowns), its durable group-commit checkpoint, restart recovery from EC2 plus the checkpoint, the small
interfaces through which the layers above report to each other, and named crash points for tests.

May import pool and the library's wire, config, errors and its pure naming rules (:mod:`vpccni.net.names`:
one route table per ENI device); nothing above.
"""
