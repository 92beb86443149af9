"""Fully Bayesian fits of mixed models (posterior draws), comparable with the penalized (blme) fits."""
