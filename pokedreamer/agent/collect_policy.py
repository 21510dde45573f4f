"""The behaviour policies ``collect`` plays, named and checked before anything heavy is imported
(the CLI's help and its refusals need no emulator, numpy or torch), and what a collection
returns."""

from __future__ import annotations

from dataclasses import dataclass

from pokedreamer.errors import UserError

RANDOM = "random"
GO_EXPLORE = "go-explore"
POLICY_HELP = (
    "Behaviour policy: random (buttons from the start), go-explore (random buttons from the "
    "places reached least), or an agent checkpoint or run folder."
)


@dataclass(frozen=True)
class CollectResult:
    steps: int
    episodes: int
    seconds: float
    replay_steps: int
    cells: int = 0
    """go-explore: the cells its archive reached."""

    def ended(self) -> str:
        """How its episodes ended, in words: go-explore's returns (it alone reaches cells) or
        the episodes that ran out."""
        if self.cells:
            return f"{self.cells:,} cells reached, {self.episodes} returns"
        return f"{self.episodes} episodes ended"


def check_policy(policy: str, workers: str = "local") -> None:
    """``random``, ``go-explore`` (on local envs), or a checkpoint that must load (checked
    before anything is made)."""
    if policy == GO_EXPLORE and workers != "local":
        raise UserError(
            "go-explore returns local envs to its snapshots: set agent.workers to local (or "
            "leave --workers out)"
        )
    if policy in (RANDOM, GO_EXPLORE):
        return
    # torch comes with a checkpoint's policy: collecting random buttons never imports it.
    from pokedreamer.agent.checkpointer import read_checkpoint_meta, resolve_checkpoint

    read_checkpoint_meta(resolve_checkpoint(policy))
