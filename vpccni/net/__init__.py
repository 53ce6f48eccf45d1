"""Netlink/iptables primitives of the node: pod plumbing, host and ENI setup, SNAT.

Modules (import the one you need; this package imports nothing on purpose, so the CNI plugin's DEL
fallback can load ``vpccni.net.hostroutes`` without pulling in the rest):

    names       aws-node's naming and numbering: host veth names, route tables, rule priorities (pure)
    rules       ip rules as values and the pure plan from "what is" to "what should be"
    nsutil      acting inside a network namespace from a threaded process; netns path validation
    rtnl        raw rtnetlink requests (stdlib only) for the per-pod paths; pyroute2 serves the rest
    hostroutes  host-side routing of a pod address (rules 512/1536, /32 route); reconciliation
    pod         setup_pod / teardown_pod / check_pod
    host        setup_eni / teardown_eni / setup_host
    snat        the SNAT/connmark rule set as pure data
    iptables    applying a rule set with iptables-nft-restore, idempotently
    testns      namespaces, veths and traffic probes for tests

Every function takes the network namespace to act in (``netns=``: a name under /run/netns, an absolute
path, an open namespace (``nsutil.NetnsFd``: how ipamd holds a pod's), or None for the caller's own) and is
idempotent. Failures raise
:class:`vpccni.errors.PlumbingError` subclasses (PlumbingBusy: retry; PlumbingFailed: don't).
"""
