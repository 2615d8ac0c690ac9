"""Recipes for zoo worlds that are made by the real pipeline (Ray, MLflow) rather than in-process."""
