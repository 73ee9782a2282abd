"""Recipes: YAML files that combine plugins into a run."""

from ._recipe import Recipe, load_recipe, recipe_hash

__all__ = ["Recipe", "load_recipe", "recipe_hash"]
