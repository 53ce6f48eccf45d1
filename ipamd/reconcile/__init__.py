"""Where the pool meets the cloud: the reconciler applies each pool decision through the cloud provider,
keeps the datastore true to EC2 (IMDS only as a hint), frees leaked ENIs and chooses subnets.

May import dataplane (to set up a new ENI's host side), state and pool, and :mod:`vpccni.cloud`.
"""
