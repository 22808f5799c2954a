"""Paper 004: CartPoleGen, a VAE over CartPole policy networks, and what it shows.

One paper's pipeline in one place: ``family.py`` (the experiment config and its steps), ``report.py``
(the report's tables and figures from the step results)."""
