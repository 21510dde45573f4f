"""Recorded episodes: ``layout`` (the files of an episode folder), ``recorder`` (writing them
step by step) and ``reader`` (reading them back). Their public names are gathered here."""

from pokedreamer.agent.episodes.layout import (
    FORMAT_VERSION,
    FRAMES,
    META,
    PLANS,
    STEPS,
    SUMMARY,
    episode_folder_name,
    state_from_json,
    state_to_json,
)
from pokedreamer.agent.episodes.reader import (
    EpisodeFrames,
    EpisodeInfo,
    EpisodeReader,
    StepRecord,
    list_episodes,
    open_episode,
)
from pokedreamer.agent.episodes.recorder import EpisodeRecorder, episode_meta

__all__ = [
    "FORMAT_VERSION",
    "FRAMES",
    "META",
    "PLANS",
    "STEPS",
    "SUMMARY",
    "EpisodeFrames",
    "EpisodeInfo",
    "EpisodeReader",
    "EpisodeRecorder",
    "StepRecord",
    "episode_folder_name",
    "episode_meta",
    "list_episodes",
    "open_episode",
    "state_from_json",
    "state_to_json",
]
