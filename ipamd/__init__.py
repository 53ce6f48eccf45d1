"""ipamd: the node daemon. One asyncio process that keeps a warm pool of VPC addresses and serves them.

Layers, top to bottom; a layer imports only layers below it (import-linter checks this):

    app        startup sequence, supervised root tasks, wiring, the conflist gate
    observe    introspection HTTP and Prometheus metrics: they observe, they never drive the pool
    k8s        the Node, ENIConfig, the startup taint, Events, pod annotations (official client)
    serve      the Unix-socket server, the request handler, per-key locks, release-record replay
    reconcile  applies pool decisions through the cloud provider; EC2/IMDS sync; leaked-ENI GC; subnets
    dataplane  pod plumbing through the pod's network namespace; host and ENI setup
    state      the datastore, its durable checkpoint, restart recovery, crash points
    pool       PURE warm-pool math: (state, settings) -> decisions; no I/O, no clock reads

Every layer may import the library (:mod:`vpccni`), except its test and local-cloud parts; nothing here
imports :mod:`plugin`. ARCHITECTURE.md at the top of the repository follows one address through them.
"""
