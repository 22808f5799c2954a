"""Analyses of trained networks: convergent learning (paper 004)."""

from .convergence import (PAPER_REFERENCE_STATES, PairComparison, absolute_activations, all_pairs,
                          bipartite_matching, compare_pairs, convergence_distance, correlations,
                          reference_states, semi_matching)

__all__ = ["PAPER_REFERENCE_STATES", "PairComparison", "absolute_activations", "all_pairs", "bipartite_matching",
           "compare_pairs", "convergence_distance", "correlations", "reference_states", "semi_matching"]
