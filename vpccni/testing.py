"""pytest plugin (entry point ``pytest11: vpccni``): fixtures for users' own moto-mocked cloud tests.

Filled in by the local-cloud work; importing this module must stay cheap and side-effect free.
"""
