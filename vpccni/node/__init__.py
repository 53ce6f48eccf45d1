"""The init container's job, before ipamd starts: install the plugin and the chained reference plugins into
the host's CNI bin directory, set the datapath sysctls, and build the conflist ipamd writes later.

May import :mod:`vpccni.wire`, :mod:`vpccni.config`, :mod:`vpccni.net` and :mod:`vpccni.cloud`; never
ipamd or plugin.
"""
