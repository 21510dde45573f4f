"""The Textual dashboard: watch the agent live with the real and the imagined screen side by side,
pause, step and force a replan, edit the planner's prompts, play by hand, and replay recorded
episodes with their subgoal traces. It reads the agent loop only through its protocol
(``pokedreamer.agent.protocol.LoopControl``: status, events, commands, prompts) and reads run
directories.

Laid out by role:

- ``app.py``: the live App, thin; ``replay.py``: the replay App, thin;
- ``screens/``: the live screen, the prompt editor, a plan opened up, the replay viewer;
- ``widgets/``: the Game Boy screen, the game state, the plan and trace, plots, status bar,
  the replay timeline;
- ``steering.py`` (the loop's modes and the commands keys send), ``pacing.py`` (when to draw),
  ``episode_trace.py`` (a recorded episode read for the replay viewer);
- the dashboard in a process of its own: ``process.py`` (the loop's side, ``run_dashboard``),
  ``__main__.py`` (the UI's process), ``bridge.py`` (what crosses the socket between them),
  ``terminal.py`` (a headless app's updates encoded as a terminal would get them).
"""
