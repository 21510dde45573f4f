"""The dashboard's screens: the live one, the prompt editor, a plan opened up, the replay viewer."""
