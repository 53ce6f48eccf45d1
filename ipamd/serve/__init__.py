"""ipamd's answer to the plugin: the Unix-socket server (its connections read with the namespace descriptor
each request may carry), the handler of each request (ADD, DEL, CHECK, GC, STATUS, PING), per-key
serialisation, and the replay of release records left by DELs made while ipamd was down.

May import dataplane, state and pool, and the library's wire protocol; not reconcile (the handler asks
the pool for more addresses through a small interface, :class:`ipamd.state.hooks.PoolDemand`).
"""
