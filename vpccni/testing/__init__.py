"""Test harnesses that ship with the library: the pytest plugin for users (:mod:`.pytest_plugin`, loaded by
every pytest run, so it imports nothing heavy), the emulated cluster (nodes running real ipamd processes,
pods created through the real plugin), and running ipamd as a child process. Needs the ``localcloud`` extra
(except the pytest plugin itself, which says so when a fixture is used without it).

May import the local cloud and every node-side part of the library; never ipamd's modules (it runs ipamd
as a process) nor plugin's.
"""
