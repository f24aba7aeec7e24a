"""Reviewing what a change applies: the pull-request comment (comment.py), what a plan costs a month
(cost.py), and the drift a scheduled refresh finds (drift.py)."""
