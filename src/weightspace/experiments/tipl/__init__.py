"""Papers 001/003: PPO policy-weight trajectories, Temporal SVD, a causal transformer (TIPL).

One paper's pipeline in one place: ``family.py`` (the experiment config and its steps), ``report.py``
(the report's tables and figures from the step results)."""
