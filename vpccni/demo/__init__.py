"""``vpccni demo``: an emulated cluster on the local cloud whose pods hold VPC addresses, shown by traffic;
its endpoints mode and its report. Needs the ``localcloud`` extra.
"""
