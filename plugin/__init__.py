"""plugin: the CNI executable the container runtime execs for every ADD, DEL, CHECK, GC, STATUS, VERSION.

Its normal path imports the standard library and :mod:`vpccni.wire` only (a test pins the list): it parses
the runtime's environment and stdin, sends ONE request to ipamd and prints the result for the requested
spec version. Its DEL fallback, when ipamd is down, also imports :mod:`vpccni.net.hostroutes`. It never
imports :mod:`ipamd`.
"""
