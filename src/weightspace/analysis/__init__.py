"""Analyses of learned weight representations: invariance, embedding spaces, probes, loss correlations."""
