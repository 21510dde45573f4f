"""Lets ``python -m pokedreamer`` behave exactly like the ``pokedreamer`` console script."""

from pokedreamer.cli import main

if __name__ == "__main__":
    main()
