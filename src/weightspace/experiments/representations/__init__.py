"""Paper 000: weight encoders pretrained by emulation and compared on downstream prediction.

One paper's pipeline in one place: ``family.py`` (the experiment config and its steps), ``analyses.py`` (the analyses), ``report.py``
(the report's tables and figures from the step results)."""
