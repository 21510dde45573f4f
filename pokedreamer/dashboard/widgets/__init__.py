"""The dashboard's widgets: the Game Boy screen, the game state, the plan and its trace, the plots,
the status bar, the replay timeline."""
