"""One instance metadata service (IMDSv2) per emulated node, served from the EC2 layer's state, with lag
and stale modes that copy real IMDS's eventual consistency.
"""
