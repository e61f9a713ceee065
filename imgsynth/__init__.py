"""imgsynth: labeled image training data from YAML recipes.

Importing this package stays light: torch, diffusers and transformers are
imported only inside the stages that need them.
"""

__version__ = "0.3.1"

__all__ = ["__version__"]
