"""The game: RAM map, charmap, dialog text, GameState, rewards and a Gymnasium env over PyBoy."""
