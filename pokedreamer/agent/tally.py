"""What a loop has played so far: env steps, episodes begun and won, and each episode ended;
and what one ``run`` did.

The driver counts into the tally as the envs play; a checkpoint saves its counters, so a resumed
run goes on counting (and seeding its episodes) where it stopped.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class Tally:
    first_seed: int
    """env.seed: episode k (from 0) of the run plays seed ``first_seed + k``."""
    steps: int = 0
    """Env steps, all envs together."""
    episodes: int = 0
    """Episodes begun."""
    badge_episodes: int = 0
    """Episodes (ended or not) in which a badge was won."""
    finished: list[dict[str, Any]] = field(default_factory=list)
    """Every episode ended in this process: seed, env, steps, why, and the step each quest
    stage was reached at."""

    def next_seed(self) -> int:
        """The seed of the next episode begun."""
        self.episodes += 1
        return self.first_seed + self.episodes - 1

    def won_badge(self) -> None:
        self.badge_episodes += 1

    def ended(self, episode: dict[str, Any]) -> None:
        self.finished.append(episode)

    def seeds_done(self, episodes: int) -> bool:
        """Whether the episodes of the first ``episodes`` seeds have all ended."""
        last = self.first_seed + episodes
        done = {e["seed"] for e in self.finished if e["seed"] < last}
        return len(done) >= episodes


@dataclass
class LoopResult:
    steps: int
    episodes: int
    updates: int
    seconds: float
    checkpoint: str | None
    badges: int = 0
    """Episodes (ended or not) in which a badge was won."""
    timings: dict[str, float] = field(default_factory=dict)
    """Seconds: ``env`` (stepping, including ``hidden``, the writes done meanwhile, and
    ``wait``, blocked on the envs), ``model`` (acting), ``train``, and ``stepping`` (the whole
    stepping loop, without starting and closing the envs)."""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)
