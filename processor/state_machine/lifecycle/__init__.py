"""One module per command, named after it; `transitions.py` decides which function runs when.

Each module's docstring lists its pre-statuses, post-statuses and actions. `common.py` holds the
pieces they share (replies, rejections, events, starting an attempt, the fast view copy).
"""
