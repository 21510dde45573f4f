"""``pokedreamer bench``: how fast the env, the world model, the planner, the agent loop and the
dashboard run, each measured beside what it costs or replaces.

One module per bench (``env``, ``world_model``, ``planner``, ``loop``; the dashboard's in
``dashboard``), the clock they share in ``timing``, the slow local LLM endpoint of the planner bench
in ``fake_llm``, and the typer verbs in ``cli``. The benches may import every other part of the
package; no other part imports them.
"""
