"""ipamd's plumbing: the pod's veth, address and routes inside the pod's network namespace, and the
host's rules, routes and ENI links, over :mod:`vpccni.net`. :mod:`.pod` is the small interface the
server uses; :mod:`.pod_linux` implements it; :mod:`.netns` decides which descriptor can be a pod's
network namespace.

May import state and pool and the library's net and wire parts.
"""
