"""Pure warm-pool math: (pool state, targets, capacity, timers) -> one decision. No I/O, no clock reads.

aws-node's WARM_ENI_TARGET / WARM_IP_TARGET / MINIMUM_IP_TARGET / WARM_PREFIX_TARGET rules, growth and
shrink plans, and the sliding peak window. Imports only the standard library and :mod:`vpccni.config`
(limits); tested over tables of cases.
"""
