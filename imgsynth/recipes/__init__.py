"""Recipes: YAML validated into typed config at the edge."""
