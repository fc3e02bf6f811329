"""The only code that touches the kernel: one worker thread and its adapters.

pyroute2 and python-iptables are both unsafe to share between threads (an fd
leak per thread for one, segfaults for the other), so a single thread owns
them; trio tasks submit plain functions to it and await their results.
"""
