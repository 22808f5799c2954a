"""Paper 002: solution degeneracy of task-trained RNNs at behaviour, dynamics and weight level.

One paper's pipeline in one place: ``family.py`` (the experiment config and its steps), ``report.py``
(the report's tables and figures from the step results)."""
