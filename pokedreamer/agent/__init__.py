"""The agent, which wires the parts together: the subgoal-conditioned actor-critic trained on
lambda-returns inside the world model's imagination, the loop that drives PyBoy, asks the planner
for plans, trains online and emits events for the dashboard, and the recorder and reader of
episodes (frames, steps and the subgoal trace) under a run directory.
"""
