"""The AWS implementation of the cloud provider interface: boto3 client settings, the one botocore -> vpccni
error mapping, response parsing, aws-node's tag conventions, and the IMDSv2 client (standard library only).

May import :mod:`vpccni.cloud`'s cloud-neutral modules, :mod:`vpccni.errors` and boto3/botocore.
"""
