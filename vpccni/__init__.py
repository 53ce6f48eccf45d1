"""vpccni: cloud-VPC-native Kubernetes IPAM/CNI.

This package is the library both programs (``ipamd`` and ``plugin``) use. Importing it has no side
effects and pulls in nothing beyond the standard library: the CNI plugin imports ``vpccni.wire.protocol``.
"""

__version__ = "0.1.0"
