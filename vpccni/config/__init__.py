"""Settings: every environment variable (aws-node's names; name, default, unit, validation) read once into
a frozen dataclass, the value parsers, and instance-type limits with the max-pods formula.

May import :mod:`vpccni.wire` and :mod:`vpccni.errors`; nothing else of the library.
"""
