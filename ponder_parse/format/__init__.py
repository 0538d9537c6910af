"""The trainer's log format: what each line kind looks like, written down once.

`grammar` describes every data line field by field (and the event lines' markers);
`writer` prints lines from it. The parser reads lines against the same grammar, so the
simulator's logs, the tests' inputs and the parser cannot drift apart.
"""
