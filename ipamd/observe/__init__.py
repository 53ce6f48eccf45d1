"""What ipamd shows: the introspection HTTP API, Prometheus metrics under aws-node's names, and the feed
that fills them. Observation only: nothing here changes the pool or wakes it.

May import reconcile, serve, state and pool (to read them) and the library; not app or k8s.
"""
