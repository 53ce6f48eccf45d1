"""The local cloud's EC2: moto keeps the state and speaks the wire format; this package adds what moto lacks
(limits, unique and non-reserved addresses, /28 prefixes, DeleteOnTermination, EC2's error codes) as a WSGI
middleware, plus throttling buckets, fault injection, latency profiles, IAM mode and an HTTP control plane.
"""
