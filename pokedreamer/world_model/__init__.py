"""System 1's world model: a DreamerV3-style discrete RSSM (GRU deterministic state plus categorical
stochastic latents with straight-through gradients) over native 160x144 frames, with its encoder and
decoder networks, distributions and losses, the replay buffer, the trainer and the open-loop report
(observed half, imagined half, error) that tells whether the model is healthy. It knows tensors, not
PyBoy: observations arrive as arrays from the agent.
"""
