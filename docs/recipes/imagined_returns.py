"""Where an agent checkpoint's imagined returns come from, and what its world model and actor
do at one place: a diagnostic for behaviour learning, run on a copy of a run directory.

    PYTHONPATH=. .venv/bin/python docs/recipes/imagined_returns.py RUN agent-000015000 \
        [--map PALLET_TOWN --cells 4,1 5,1 6,1 4,2 5,2 6,2 --goal ROUTE_1] [--battle] [--heads]
        [--goals ROUTE_1 --rows 6-9] [--leader PEWTER_GYM:4,2]

1. Imagines from the posteriors of a few replayed batches as behaviour learning does (each
   start paired with a subgoal live there) and prints the returns' 5/50/95th percentiles, the
   return scale, and per subgoal: its starts, the mean return and its range, the shaping and
   the game's reward summed over the imagined steps, the share completed, the critic's value.
2. From the replayed states standing on ``--cells`` of ``--map`` (out of battle), rolls the
   world model under four presses of each direction and prints how often it predicts
   ``--goal``'s map; then lets the actor, given ``go_to_map --goal``, act there and prints its
   first buttons' mean probabilities and the share of rollouts that complete the subgoal.
3. With ``--battle``, the same in a wild battle's menu: the enemy's HP the world model
   predicts after four presses of each button, what the actor presses, told to win, and how
   its imagined wins come about (from full HP in one step; the head's P(fainted) there).
   Then, over the replayed steps inside a wild battle, the blows that landed (the enemy's HP
   lower on the next step): how often one imagined step from the posterior predicts the blow
   after the button really pressed, after A and after right (the cursor to RUN, which cannot
   land one), and how often the next step's posterior reads it: whether the model knows that A
   strikes. Then, on the replayed last pages of battle messages (only A or B closes one), the
   model's P(text shown) a step after each button, and the actor's P(A or B) there. Last, on
   the pages of battles still fought, what fifteen presses of one button lead the model to,
   and the imagined returns, told to win, under A, B, left, down and the actor.
4. With ``--heads``, per map the replayed states of 40 batches stand on: how often the map
   head names that map from their posteriors (and what it names instead), and how often the
   x and y heads both hit the cell.
5. With ``--goals MAP``, from the replayed states on ``--rows`` of that map (out of battle and
   text), the actor's mean probability of each button when told to go to each map of the game
   (and to win a battle): whether it tells the goals apart at all.
6. With ``--leader MAP:X,Y``, from the replayed calm states on that cell (on the fixture, the
   gym leader's challenge cell ``PEWTER_GYM:4,2``): how often eight presses of A, and of up
   and B, lead the world model to a text box or a trainer battle (on the cartridge the leader's
   battle starts about four steps after his first words), and what the actor presses there
   told to earn the BOULDERBADGE: whether the model knows that A there starts the fight, and
   whether the actor asks for it.

No gradient step is taken and nothing is written to RUN: the run is read through a temporary
folder that links its replay.
"""

from __future__ import annotations

import argparse
import collections
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from pokedreamer.agent.actor_critic import lambda_return
from pokedreamer.agent.behavior import goal_tensor
from pokedreamer.agent.learner import Starts
from pokedreamer.agent.loop import AgentLoop
from pokedreamer.config import load_settings
from pokedreamer.env.state import BATTLE_ORDER, VECTOR_FIELDS, VECTOR_SIZE
from pokedreamer.planner.subgoals import EarnBadge, GoToMap, WinBattle, describe
from pokedreamer.rundir import RunDir
from pokedreamer.world_model.dist import twohot_mean
from pokedreamer.world_model.heads import ENEMY_HP_BINS
from pokedreamer.world_model.model import WorldModel
from pokedreamer.world_model.rssm import RSSMState, stack_states
from pokedreamer.world_model.trainer import BURN_IN, with_context

PRESSES = 4
TALK_PRESSES = 8


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run", type=Path)
    parser.add_argument("checkpoint", help="e.g. agent-000015000, or wm-000002000")
    parser.add_argument("--batches", type=int, default=3)
    parser.add_argument("--map", default="PALLET_TOWN")
    parser.add_argument("--cells", nargs="*", default=["4,1", "5,1", "6,1", "4,2", "5,2", "6,2"])
    parser.add_argument("--goal", default="ROUTE_1")
    parser.add_argument("--battle", action="store_true", help="probe wild battles' menus too")
    parser.add_argument("--heads", action="store_true", help="the map and cell heads, per map")
    parser.add_argument("--goals", metavar="MAP", help="the actor's buttons per goal on MAP")
    parser.add_argument("--rows", default="0-255", help="with --goals: rows LOW-HIGH of MAP")
    parser.add_argument("--leader", metavar="MAP:X,Y", help="A at a gym leader's cell")
    args = parser.parse_args()
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as folder:
        run = _copy(args.run, args.checkpoint, Path(folder) / "run")
        # A world-model checkpoint (wm-...) is loaded as --checkpoint, the actor untrained.
        start = run / "checkpoints" / args.checkpoint if args.checkpoint.startswith("wm-") else None
        loop = AgentLoop(
            load_settings(run / "config.toml"), RunDir.open(run), checkpoint=start, train=True
        )
        if len(loop.learner.pool):
            returns_by_subgoal(loop, args.batches)
            cells = {tuple(int(v) for v in c.split(",")) for c in args.cells}
            at_a_place(loop, args.map, cells, args.goal)
        else:  # a world-model checkpoint: no actor has pursued a subgoal yet
            print("no subgoal in the checkpoint's pool: imagined returns and the place skipped")
        if args.battle:
            in_battle(loop)
            blows(loop)
            last_pages(loop)
            fought_pages(loop)
        if args.heads:
            heads_by_map(loop)
        if args.goals:
            low, high = (int(v) for v in args.rows.split("-"))
            buttons_by_goal(loop, args.goals, range(low, high + 1))
        if args.leader:
            map_name, cell = args.leader.split(":")
            x, y = (int(v) for v in cell.split(","))
            at_the_leader(loop, map_name, (x, y))


def _copy(source: Path, checkpoint: str, to: Path) -> Path:
    (to / "checkpoints").mkdir(parents=True)
    for name in ("config.toml", "format.json", "map_graph.json"):
        if (source / name).exists():  # a run that has only collected has no map graph
            shutil.copy(source / name, to / name)
    (to / "replay").symlink_to((source / "replay").resolve())
    for suffix in (".json", ".safetensors"):
        shutil.copy(source / "checkpoints" / (checkpoint + suffix), to / "checkpoints")
    return to


def _posteriors(loop: AgentLoop) -> tuple[Starts, dict[str, torch.Tensor]]:
    """A replayed batch's posteriors, as the learner starts from them, without an update."""
    trainer = loop.learner.trainer
    wm = trainer.settings
    batch = loop.learner.replay.sample(wm.batch_size, wm.batch_length)
    tensors = trainer.tensors(batch)
    with torch.no_grad():
        _, _, posts = trainer._loss(tensors)
    context = with_context(tensors["is_first"], tensors.get("cut"), BURN_IN)
    usable = np.flatnonzero(context.flatten().cpu().numpy())
    vectors = batch["states"].reshape(-1, VECTOR_SIZE)
    return Starts(posts.map(lambda x: x.float()).flatten(), vectors, usable), tensors


def returns_by_subgoal(loop: AgentLoop, batches: int) -> None:
    learner, behavior = loop.learner, loop.learner.behavior
    cfg = behavior.settings
    rows: dict[str, dict[str, list[float]]] = collections.defaultdict(
        lambda: collections.defaultdict(list)
    )
    pooled = []
    for _ in range(batches):
        starts, _ = _posteriors(loop)
        take = min(cfg.imagine_batch, len(starts.usable))
        chosen = learner.rng.choice(starts.usable, take, replace=False)
        index = torch.from_numpy(chosen)
        posts = starts.posts.map(lambda x, index=index: x.index_select(0, index))
        subgoals, _ = learner.pool.pair(learner.rng, starts.vectors[chosen], [])
        goal = learner.pool.rows(subgoals)
        with torch.no_grad():
            imag = behavior.imagine(learner.world_model, posts, goal, subgoals, learner.facts)
            values = twohot_mean(behavior.slow_critic(imag.feats, imag.goal))
            returns = lambda_return(imag.rewards, imag.conts, values, cfg.gamma, cfg.lam)
        weights, game = imag.weights, imag.rewards - imag.shaping
        pooled.append(returns[weights > 0])
        for j, subgoal in enumerate(subgoals):
            if weights[0, j] <= 0:
                continue
            row = rows[describe(subgoal)]
            row["return"].append(float(returns[0, j]))
            row["shaping"].append(float((imag.shaping[:, j] * weights[:, j]).sum()))
            row["game"].append(float((game[:, j] * weights[:, j]).sum()))
            row["done"].append(float(1 - imag.alive[-1, j]))
            row["value"].append(float(values[0, j]))
    every = torch.cat(pooled)
    q = [round(float(torch.quantile(every, p)), 2) for p in (0.05, 0.5, 0.95)]
    print(f"returns 5/50/95%: {q}; return scale {float(behavior.return_norm.scale()):.1f}")
    print("subgoal | starts | return mean [min, max] | shaping | game | done | value")
    for name, row in sorted(rows.items(), key=lambda item: -len(item[1]["return"])):
        r = row["return"]
        print(
            f"{name} | {len(r)} | {np.mean(r):.2f} [{min(r):.2f}, {max(r):.2f}] | "
            f"{np.mean(row['shaping']):.2f} | {np.mean(row['game']):.2f} | "
            f"{np.mean(row['done']):.2f} | {np.mean(row['value']):.2f}"
        )


def at_a_place(loop: AgentLoop, map_name: str, cells: set[tuple[int, int]], goal: str) -> None:
    learner, facts = loop.learner, loop.learner.facts
    heads = learner.world_model.state_heads
    found = []
    for _ in range(12):
        starts, tensors = _posteriors(loop)
        t = heads.targets(tensors["states"].reshape(-1, VECTOR_SIZE))
        on_map = t["map_id"] == heads.map_class[facts.map_id(map_name)]
        for i in starts.usable:
            if on_map[i] and t["battle"][i] == 0 and (int(t["x"][i]), int(t["y"][i])) in cells:
                found.append(starts.posts.map(lambda x, i=i: x[i]))
    print(f"starts on {map_name} at {sorted(cells)}: {len(found)}")
    if not found:
        return
    posts = stack_states(found, 0)
    buttons = loop.settings.env.action_names
    target = facts.map_id(goal)
    for direction in ("up", "down", "left", "right"):
        press = torch.zeros(len(found), len(buttons))
        press[:, buttons.index(direction)] = 1.0
        with torch.no_grad():
            states, _ = learner.world_model.rssm.imagine(posts, lambda _, p=press: p, PRESSES)
            preds = learner.world_model.predict(learner.world_model.rssm.feat(states), state=True)
        reached = float((preds["map_id"] == target).any(0).float().mean())
        print(f"{PRESSES} x {direction}: {goal} predicted in {reached:.0%} of rollouts")
    subgoal = GoToMap(map=goal)
    rows = learner.pool.rows([subgoal] * len(found))
    behavior = learner.behavior
    with torch.no_grad():
        imag = behavior.imagine(learner.world_model, posts, rows, [subgoal] * len(found), facts)
        first = behavior.actor(imag.feats[:1], rows)[0].exp().mean(0)
    probabilities = ", ".join(f"{b} {float(p):.2f}" for b, p in zip(buttons, first, strict=True))
    print(f"actor, go to {goal}: first buttons {probabilities}")
    print(f"completed within the horizon: {float(1 - imag.alive[-1].float().mean()):.0%}")


def blows(loop: AgentLoop, batches: int = 12) -> None:
    """Over replayed steps in a wild battle, the blows that landed: the share the world model
    predicts one imagined step ahead after the real button, after A and after right, and the
    share the next step's posterior reads. A predicted blow is the enemy-HP head below the
    step's true HP by more than one bin."""
    wm = loop.learner.world_model
    buttons = loop.settings.env.action_names
    wild = BATTLE_ORDER.index("wild")
    seen: dict[str, list[torch.Tensor]] = collections.defaultdict(list)
    for _ in range(batches):
        batch, posts, truth = _replayed(loop)
        b, t = batch["actions"].shape
        battle = truth["battle"].reshape(b, t)
        enemy = torch.as_tensor(batch["states"][..., VECTOR_FIELDS.index("enemy_hp_fraction")])
        enemy = enemy.float()
        # actions[:, s + 1] is the button pressed between steps s and s + 1.
        pairs = [
            (i, s)
            for i in range(b)
            for s in range(BURN_IN, t - 1)
            if battle[i, s] == wild and battle[i, s + 1] == wild and enemy[i, s + 1] < enemy[i, s]
        ]
        if not pairs:
            continue
        here = torch.tensor([i * t + s for i, s in pairs])
        flat = posts.map(lambda x: x.float().flatten(0, 1))
        start = flat.map(lambda x, rows=here: x.index_select(0, rows))
        after = flat.map(lambda x, rows=here + 1: x.index_select(0, rows))
        before = torch.stack([enemy[i, s] for i, s in pairs])
        real = torch.tensor([int(batch["actions"][i, s + 1]) for i, s in pairs])
        with torch.no_grad():
            for name, action in (
                ("the real button", real),
                ("A", torch.full_like(real, buttons.index("a"))),
                ("right", torch.full_like(real, buttons.index("right"))),
            ):
                one_hot = torch.nn.functional.one_hot(action, len(buttons)).float()
                for _ in range(8):  # the prior is sampled: average over draws
                    step = wm.rssm.img_step(start, one_hot)
                    seen[f"imagined after {name}"].append(_blow(wm, wm.rssm.feat(step), before))
            seen["the next posterior"].append(_blow(wm, wm.rssm.feat(after), before))
    if not seen:
        print("no blow landed in the replayed batches")
        return
    landed = len(torch.cat(seen["the next posterior"]))
    print(f"blows landed in {batches} replayed batches: {landed}; the share the model reads")
    for name, values in seen.items():
        print(f"  {name}: {float(torch.cat(values).mean()):.2f}")


def _replayed(loop: AgentLoop) -> tuple[dict[str, np.ndarray], RSSMState, dict[str, torch.Tensor]]:
    """A replayed batch, its posteriors (B, T, ...) and the state heads' targets for its states
    (flattened to B * T), without an update."""
    trainer = loop.learner.trainer
    batch = loop.learner.replay.sample(trainer.settings.batch_size, trainer.settings.batch_length)
    with torch.no_grad():
        _, _, posts = trainer._loss(trainer.tensors(batch))
    states = torch.as_tensor(batch["states"]).reshape(-1, VECTOR_SIZE)
    return batch, posts, loop.learner.world_model.state_heads.targets(states)


def _blow(wm: WorldModel, feat: torch.Tensor, before: torch.Tensor) -> torch.Tensor:
    """1.0 where the enemy-HP head reads more than one bin below ``before``, the true HP."""
    hp = wm.predict(feat, state=True)["enemy_hp_fraction"].float()
    return (hp < before - 1.0 / ENEMY_HP_BINS).float()


def in_battle(loop: AgentLoop) -> None:
    """From replayed states in a wild battle's menu (no text shown, the enemy not fainted),
    the enemy's HP the world model predicts after four presses of each button, and what the
    actor, told to win the battle, presses there."""
    learner = loop.learner
    heads = learner.world_model.state_heads
    found, before = [], []
    for _ in range(12):
        starts, tensors = _posteriors(loop)
        t = heads.targets(tensors["states"].reshape(-1, VECTOR_SIZE))
        for i in starts.usable:
            wild = t["battle"][i] == BATTLE_ORDER.index("wild")
            if wild and t["text_shown"][i, 0] == 0 and t["enemy_hp_fraction"][i] > 0:
                found.append(starts.posts.map(lambda x, i=i: x[i]))
                before.append(float((t["enemy_hp_fraction"][i] - 0.5) / 20))
    print(f"starts in a wild battle's menu: {len(found)}, enemy HP {np.mean(before):.2f}")
    if not found:
        return
    posts = stack_states(found, 0)
    buttons = loop.settings.env.action_names
    for button in buttons:
        press = torch.zeros(len(found), len(buttons))
        press[:, buttons.index(button)] = 1.0
        with torch.no_grad():
            states, _ = learner.world_model.rssm.imagine(posts, lambda _, p=press: p, PRESSES)
            preds = learner.world_model.predict(learner.world_model.rssm.feat(states), state=True)
        enemy = preds["enemy_hp_fraction"]
        fighting = preds["battle"] != BATTLE_ORDER.index("none")
        print(
            f"{PRESSES} x {button}: enemy HP {float(enemy[-1].mean()):.2f}, "
            f"still in battle {float(fighting[-1].float().mean()):.0%}"
        )
    subgoal = WinBattle()
    rows = learner.pool.rows([subgoal] * len(found))
    behavior = learner.behavior
    with torch.no_grad():
        imag = behavior.imagine(
            learner.world_model, posts, rows, [subgoal] * len(found), learner.facts
        )
        first = behavior.actor(imag.feats[:1], rows)[0].exp().mean(0)
    probabilities = ", ".join(f"{b} {float(p):.2f}" for b, p in zip(buttons, first, strict=True))
    print(f"actor, win the battle: first buttons {probabilities}")
    for t in range(0, imag.actions.shape[0], 3):
        with torch.no_grad():
            preds = learner.world_model.predict(imag.feats[t], state=True)
        fighting = preds["battle"] != BATTLE_ORDER.index("none")
        pressed = collections.Counter(buttons[int(b)] for b in imag.actions[t]).most_common(2)
        print(
            f"  imagined step {t}: enemy HP {float(preds['enemy_hp_fraction'].mean()):.2f}, "
            f"in battle {float(fighting.float().mean()):.0%}, "
            f"alive {float(imag.alive[t].float().mean()):.0%}, pressed {pressed}"
        )
    print(f"completed within the horizon: {float(1 - imag.alive[-1].float().mean()):.0%}")
    # Each rollout's win: the enemy's HP the step before, and how sure the head was of a faint.
    steps, rollouts = ((imag.alive[:-1] > 0) & (imag.alive[1:] == 0)).nonzero(as_tuple=True)
    if len(rollouts):
        with torch.no_grad():
            logits = learner.world_model.state_heads(imag.feats)["enemy_hp_fraction"].float()
        probs = torch.softmax(logits, -1)
        from_full = probs[steps, rollouts].argmax(-1) == probs.shape[-1] - 1
        sure = probs[steps + 1, rollouts, 0]
        print(
            f"imagined wins from full HP in one step: {float(from_full.float().mean()):.0%}; "
            f"P(fainted) at the win, median {float(sure.median()):.2f}"
        )


def _posts_where(
    loop: AgentLoop, batches: int, keep: Callable[[np.ndarray, np.ndarray, np.ndarray, int], bool]
) -> list[RSSMState]:
    """The posteriors of the replayed steps s (past the burn-in, before a row's last step) for
    which ``keep(battle, text, enemy, s)`` holds, given the row's state-head targets (T,) each:
    the battle class, text shown and the enemy's HP bin. Step s + 1 follows the button
    ``actions[:, s + 1]``."""
    found = []
    for _ in range(batches):
        batch, posts, truth = _replayed(loop)
        b, t = batch["actions"].shape
        battle, text = truth["battle"].reshape(b, t), truth["text_shown"].reshape(b, t)
        enemy = truth["enemy_hp_fraction"].reshape(b, t)
        flat = posts.map(lambda x: x.float().flatten(0, 1))
        rows = [
            i * t + s
            for i in range(b)
            for s in range(BURN_IN, t - 1)
            if keep(battle[i], text[i], enemy[i], s)
        ]
        found.extend(flat.map(lambda x, r=row: x[r]) for row in rows)
    return found


def last_pages(loop: AgentLoop, batches: int = 12) -> None:
    """Over replayed steps on the last page of a battle's message (the next step, after A or B,
    shows the menu: no text), P(text shown) one imagined step later after A, after B and after
    each other button (on the cartridge only A and B turn a page), and the actor's P(A or B)
    there, told to win: whether the model knows what closes a message, and whether the actor
    asks for it."""
    learner = loop.learner
    wm = learner.world_model
    buttons = loop.settings.env.action_names
    none = BATTLE_ORDER.index("none")
    found = _posts_where(
        loop,
        batches,
        lambda battle, text, _, s: (
            battle[s] != none and battle[s + 1] != none and text[s] and not text[s + 1]
        ),
    )
    print(f"last pages of battle messages in {batches} replayed batches: {len(found)}")
    if not found:
        return
    start = stack_states(found, 0)
    shown = {}
    with torch.no_grad():
        for button in buttons:
            one_hot = torch.zeros(len(found), len(buttons))
            one_hot[:, buttons.index(button)] = 1.0
            draws = [
                wm.predict(wm.rssm.feat(wm.rssm.img_step(start, one_hot)), state=True)["text_shown"]
                .float()
                .mean()
                for _ in range(8)  # the prior is sampled: average over draws
            ]
            shown[button] = float(torch.stack(draws).mean())
        subgoal = WinBattle()
        goal = learner.pool.rows([subgoal] * len(found))
        probs = learner.behavior.actor(wm.rssm.feat(start), goal).exp().mean(0)
    print("P(text shown) one imagined step later: " + ", ".join(
        f"{b} {v:.2f}" for b, v in shown.items()
    ))  # fmt: skip
    turn = float(probs[buttons.index("a")] + probs[buttons.index("b")])
    print(f"actor, win the battle: P(A or B) {turn:.2f} (uniform: {2 / len(buttons):.2f})")


def fought_pages(loop: AgentLoop, batches: int = 12, steps: int = 15) -> None:
    """From replayed steps showing a battle's message while the enemy still fights (the next
    step shows one too), ``steps`` imagined presses of one button: the enemy's HP and the shares
    still in a battle and showing a message at the end; then, told to win, the imagined
    returns under each such button and under the actor (the slow critic bootstrapping, as
    training does), and the share of rollouts that won. On the cartridge only A and B turn a
    page, and a button that turns none can win nothing."""
    learner = loop.learner
    wm, behavior = learner.world_model, learner.behavior
    buttons = loop.settings.env.action_names
    none = BATTLE_ORDER.index("none")
    found = _posts_where(
        loop,
        batches,
        lambda battle, text, enemy, s: (
            battle[s] != none and text[s] and text[s + 1] and enemy[s] > 0
        ),
    )
    print(f"message steps of battles still fought in {batches} replayed batches: {len(found)}")
    if not found:
        return
    start, n = stack_states(found, 0), len(found)
    subgoal = WinBattle()
    goal = learner.pool.rows([subgoal] * n)
    cfg, act = behavior.settings, behavior.act
    try:
        for button in ("a", "b", "left", "down", None):
            if button is not None:
                press = torch.zeros(n, len(buttons))
                press[:, buttons.index(button)] = 1.0
                with torch.no_grad():
                    states, _ = wm.rssm.imagine(start, lambda _, p=press: p, steps)
                    preds = wm.predict(wm.rssm.feat(states), state=True)
                enemy = float(preds["enemy_hp_fraction"][-1].mean())
                fought = float((preds["battle"][-1] != none).float().mean())
                shown = float(preds["text_shown"][-1].float().mean())
                print(
                    f"{steps} x {button}: enemy HP {enemy:.2f}, in battle {fought:.0%}, "
                    f"message {shown:.0%}"
                )
                behavior.act = lambda feat, goal, sample=True, p=press: p[: feat.shape[0]]
            else:
                behavior.act = act
            with torch.no_grad():
                imag = behavior.imagine(wm, start, goal, [subgoal] * n, learner.facts)
                values = twohot_mean(behavior.slow_critic(imag.feats, imag.goal))
                returns = lambda_return(imag.rewards, imag.conts, values, cfg.gamma, cfg.lam)
            print(
                f"  told to win, {button or 'the actor'}: imagined return "
                f"{float(returns[0].mean()):.2f}, won {float(1 - imag.alive[-1].mean()):.0%}"
            )
    finally:
        behavior.act = act


def heads_by_map(loop: AgentLoop, batches: int = 40) -> None:
    """Per map the replayed states stand on: the share of their posteriors whose map head names
    it (the other maps it names, most often first), and whose x and y heads both hit."""
    heads, world_model = loop.learner.world_model.state_heads, loop.learner.world_model
    named: dict[int, collections.Counter[int]] = collections.defaultdict(collections.Counter)
    cell: dict[int, list[bool]] = collections.defaultdict(list)
    for _ in range(batches):
        starts, tensors = _posteriors(loop)
        t = heads.targets(tensors["states"].reshape(-1, VECTOR_SIZE))
        with torch.no_grad():
            p = world_model.predict(world_model.rssm.feat(starts.posts), state=True)
        true = heads.map_id[t["map_id"]]
        for i in starts.usable.tolist():
            m = int(true[i])
            named[m][int(p["map_id"][i])] += 1
            cell[m].append(bool(p["x"][i] == t["x"][i]) and bool(p["y"][i] == t["y"][i]))
    print("map | rows | map head right | named instead | x and y right")
    for m in sorted(named):
        n = sum(named[m].values())
        others = ", ".join(f"{k} {v / n:.0%}" for k, v in named[m].most_common() if k != m)
        print(f"{m} | {n} | {named[m][m] / n:.0%} | {others or '-'} | {np.mean(cell[m]):.0%}")


def _calm_posts(
    loop: AgentLoop, map_name: str, on: Callable[[int, int], bool], batches: int
) -> list[RSSMState]:
    """The posteriors of replayed states on ``map_name`` out of battle and text, at the cells
    (x, y) that ``on`` accepts, from ``batches`` seeded batches."""
    learner = loop.learner
    heads = learner.world_model.state_heads
    found = []
    for _ in range(batches):
        starts, tensors = _posteriors(loop)
        t = heads.targets(tensors["states"].reshape(-1, VECTOR_SIZE))
        on_map = heads.map_id[t["map_id"]] == learner.facts.map_id(map_name)
        calm = (t["battle"] == 0) & (t["text_shown"][:, 0] == 0)
        for i in starts.usable.tolist():
            if on_map[i] and calm[i] and on(int(t["x"][i]), int(t["y"][i])):
                found.append(starts.posts.map(lambda x, i=i: x[i]))
    return found


def buttons_by_goal(loop: AgentLoop, map_name: str, rows: range, batches: int = 8) -> None:
    """The actor's mean button probabilities on the replayed calm states of ``rows`` of a map,
    under go_to_map of each map the game has and under win_battle."""
    learner = loop.learner
    facts, world_model, behavior = learner.facts, learner.world_model, learner.behavior
    found = _calm_posts(loop, map_name, lambda x, y: y in rows, batches)
    if not found:
        print(f"no calm replayed state on rows {rows.start}-{rows.stop - 1} of {map_name}")
        return
    posts = stack_states(found, 0)
    buttons = loop.settings.env.action_names
    goals = [GoToMap(map=name) for name in facts.maps] + [WinBattle()]
    print(f"{len(found)} states on {map_name} rows {rows.start}-{rows.stop - 1}; the actor's "
          "mean probability of each button, per goal")  # fmt: skip
    print("goal | " + " | ".join(buttons))
    with torch.no_grad():
        feat = world_model.rssm.feat(posts)
        for goal in goals:
            probs = behavior.actor(feat, goal_tensor(goal, facts, len(found), feat.device)).exp()
            print(describe(goal) + " | " + " | ".join(f"{p:.2f}" for p in probs.mean(0).tolist()))


def at_the_leader(loop: AgentLoop, map_name: str, cell: tuple[int, int], batches: int = 24) -> None:
    """From the replayed calm states on ``cell`` of ``map_name``: the share of rollouts in which
    the world model predicts a text box, and a trainer battle, within TALK_PRESSES presses of
    A, up and B; and the actor's first buttons there told to earn the BOULDERBADGE."""
    learner = loop.learner
    facts, world_model, behavior = learner.facts, learner.world_model, learner.behavior
    found = _calm_posts(loop, map_name, lambda x, y: (x, y) == cell, batches)
    print(f"calm replayed states on {map_name} at {cell}: {len(found)}")
    if not found:
        return
    posts = stack_states(found, 0)
    buttons = loop.settings.env.action_names
    trainer = BATTLE_ORDER.index("trainer")
    for button in ("a", "up", "b"):
        press = torch.zeros(len(found), len(buttons))
        press[:, buttons.index(button)] = 1.0
        with torch.no_grad():
            states, _ = world_model.rssm.imagine(posts, lambda _, p=press: p, TALK_PRESSES)
            preds = world_model.predict(world_model.rssm.feat(states), state=True)
        text = float((preds["text_shown"] > 0.5).any(0).float().mean())
        battle = float((preds["battle"] == trainer).any(0).float().mean())
        print(f"{TALK_PRESSES} x {button}: a text box in {text:.0%} of rollouts, a trainer battle "
              f"in {battle:.0%}")  # fmt: skip
    subgoal = EarnBadge(badge="BOULDER")
    goal = goal_tensor(subgoal, facts, len(found), posts.deter.device)
    with torch.no_grad():
        first = behavior.actor(world_model.rssm.feat(posts), goal).exp().mean(0)
    probabilities = ", ".join(f"{b} {float(p):.2f}" for b, p in zip(buttons, first, strict=True))
    print(f"actor, earn the BOULDERBADGE: first buttons {probabilities}")


if __name__ == "__main__":
    main()
