"""The planner's default prompt templates, shipped as package data (`*.txt` beside this file). A
user overrides them by pointing `planner.prompts_dir` at a folder of their own templates.
"""
