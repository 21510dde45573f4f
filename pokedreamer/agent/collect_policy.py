"""The behaviour policies ``collect`` plays, named and checked before anything heavy is imported
(the CLI's help and its refusals need no emulator, numpy or torch)."""

from __future__ import annotations

RANDOM = "random"
GO_EXPLORE = "go-explore"
POLICY_HELP = (
    "Behaviour policy: random (buttons from the start), go-explore (random buttons from the "
    "places reached least), or an agent checkpoint or run folder."
)


def check_policy(policy: str) -> None:
    """``random``, ``go-explore``, or a checkpoint that must load (checked before anything is
    made)."""
    if policy in (RANDOM, GO_EXPLORE):
        return
    # torch comes with a checkpoint's policy: collecting random buttons never imports it.
    from pokedreamer.agent.checkpointer import read_checkpoint_meta, resolve_checkpoint

    read_checkpoint_meta(resolve_checkpoint(policy))
