"""ipamd's top layer: the entry point, the startup sequence, the supervised root tasks and their wiring.

May import every other ipamd layer and the library's node-side parts (:mod:`vpccni.config`,
:mod:`vpccni.cloud`, :mod:`vpccni.net`, :mod:`vpccni.node`, :mod:`vpccni.wire`); never the local cloud,
the test harnesses or the CLI.
"""
