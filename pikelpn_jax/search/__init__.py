"""Per-layer bit widths chosen by an exact optimiser under an ACEv2 budget (docs/search.md).

space.py (layers, choices, the config a choice gives), cost.py (the cost table from the
analyzer), sensitivity.py (measured loss increase, data-free proxy), optimize.py (the 0/1 program,
re-pricing), cli.py (`python -m pikelpn_jax.search`).
"""
