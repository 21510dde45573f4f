"""The Textual dashboard: watch the agent live with the real and the imagined screen side by side,
pause, step and force a replan, edit the planner's prompts, play by hand, and replay recorded
episodes with their subgoal traces. It only subscribes to the agent loop's events and reads run
directories.
"""
