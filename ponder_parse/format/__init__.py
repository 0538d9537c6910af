"""The trainer's log format: what each line kind looks like, written down once.

The parser reads lines against this grammar and the simulator writes them with it.
"""
