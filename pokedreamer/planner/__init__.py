"""System 2, the strategic planner: the closed Subgoal schema with each kind's `done` and potential
`phi` (whose difference shapes System 1's rewards without changing the optimal policy), the game's
facts and the check of a plan against them, the LLM planner that turns a GameState summary and the
dialog text into a goal and a short subgoal queue, an offline heuristic planner that needs no
network, the triggers that decide when to replan, and prompt rendering. It knows GameState and
Subgoal, not torch; whatever the LLM answers is parsed into the schema or rejected.
"""
