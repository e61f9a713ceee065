"""Engines run a recipe's chain over sample indices; stages never know which one."""
