"""The emulated VPC's dataplane: nodes as network namespaces, ENIs as veths into a router that delivers each
address to the ENI that holds it (EC2's source/destination check), and the namespace toolkit it runs on.
"""
