"""The CNI error codes this project uses: the spec's well-known ones (0-99) and ours (100+, 999).

The one table of codes. Which failure gets which code is decided in one place, :mod:`plugin.cni`; the
tests and the emulated cluster compare against these names, never against bare numbers.
"""

from __future__ import annotations

# --- the CNI spec's codes (SPEC.md "Error codes") ----------------------------------------------------
INCOMPATIBLE_VERSION = 1
INVALID_ENV = 4  # a CNI_* variable is missing or invalid
IO_FAILURE = 5
DECODE_FAILURE = 6  # stdin is not the JSON the spec describes
INVALID_CONFIG = 7  # the network configuration is valid JSON but wrong
TRY_AGAIN_LATER = 11  # transient: the runtime should retry the whole ADD later
STATUS_UNAVAILABLE = 50  # STATUS: the plugin cannot serve ADD right now

# --- ours ----------------------------------------------------------------------------------------------
NO_IP = 100  # the pool cannot give an address and will not by itself (an operator must act)
PLUMBING_FAILED = 101
CHECK_FAILED = 102
REQUEST_REJECTED = 103  # ipamd refused the request as malformed
IPAMD_INCOMPATIBLE = 104  # plugin and ipamd speak different protocol versions
INTERNAL = 999
