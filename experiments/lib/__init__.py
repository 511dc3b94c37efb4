"""Shared, public building blocks of the experiment scripts (recipe, run cache, statistics)."""
