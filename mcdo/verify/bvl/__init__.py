"""BayesVLM claims (BVL), one module per tier."""
