"""Shared, public building blocks of the experiment scripts (recipe, run cache, statistics,
model zoo, results writing, Fashion-MNIST budget, energy model)."""
