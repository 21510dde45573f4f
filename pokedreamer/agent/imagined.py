"""The world model's guess of env 0's newest screen, for watchers.

The prior's guess is made before the posterior has seen the frame; a tiles model's guess is a
grid of tokens, drawn through the run's vocabulary at the screen's full 160 x 144 (a token it has
no pattern for drawn as unknown, env/tiles.py). Decoding is not free, so it
runs on a budget: at most ``IMAGINE_SHARE`` of the wall time, and no more often than
``IMAGINE_FPS``.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import torch

from pokedreamer.agent.events import EventBus, ImaginedEvent
from pokedreamer.env.tiles import TileVocabulary
from pokedreamer.world_model.model import WorldModel

IMAGINE_SHARE = 0.01  # of the wall time, at most, decoding imagined frames for watchers
IMAGINE_FPS = 5.0  # imagined frames a second, at most: enough to watch the model guess


class ImaginedFrames:
    def __init__(
        self, world_model: WorldModel, num_actions: int, device: torch.device, bus: EventBus,
        tiles: TileVocabulary | None = None,
    ) -> None:  # fmt: skip
        self.world_model, self.num_actions, self.device, self.bus = (
            world_model, num_actions, device, bus,
        )  # fmt: skip
        self.tiles = tiles
        self._next = 0.0

    def due(self) -> bool:
        """Whether someone listens and the budget allows a frame now."""
        return self.bus.wants(ImaginedEvent) and time.perf_counter() >= self._next

    def publish(
        self, step: int, prev_post: Any, actions_prev: torch.Tensor, is_first: torch.Tensor,
        before: np.ndarray | None = None,
    ) -> None:  # fmt: skip
        """Env 0's prior after ``actions_prev`` from ``prev_post``, decoded (none on an
        episode's first frame: there is nothing to guess from); a token model draws it over
        ``before``, the observations (n, 18, 20) the prior's step began from."""
        if bool(is_first[0]):
            return
        began = time.perf_counter()
        with torch.no_grad():
            rssm = self.world_model.rssm
            state = prev_post.map(lambda x: x[:1])
            one_hot = torch.nn.functional.one_hot(
                actions_prev[:1].to(self.device), self.num_actions
            ).float()
            prior = rssm.img_step(state, one_hot)
            grid = None  # a pixel model draws from the latent state alone
            if self.tiles is not None and before is not None:
                grid = torch.as_tensor(before[:1], device=self.device)
            guess = self.world_model.imagined_obs(rssm.feat(prior), grid)[0].cpu().numpy()
        if self.tiles is not None:
            frame = self.tiles.render(guess)
        else:
            pool = self.world_model.preset.pool
            frame = guess.repeat(pool, 0).repeat(pool, 1)
        self.bus.publish(ImaginedEvent(step, 0, frame))
        spent = time.perf_counter() - began
        self._next = began + max(spent / IMAGINE_SHARE, 1.0 / IMAGINE_FPS)
