"""ipamd's Kubernetes side, through the official client: its Node (labels, annotations, the startup taint),
the node's ENIConfig, Events, and the pod-IP annotations.

May import dataplane, state and pool, and the library; not app, observe, serve or reconcile (the app layer
wires the reconciler to it).
"""
