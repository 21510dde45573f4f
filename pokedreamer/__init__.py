"""pokedreamer: an agent that plays Pokémon Red with a world model (System 1) and an LLM planner
(System 2)."""

# The one place the version lives; pyproject.toml reads it from here.
__version__ = "0.1.0"
