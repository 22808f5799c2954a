"""Paper 004 (agent embeddings) as commands and as one report: zoo, CartPoleGen, convergence,
latent walks, weight repair."""
