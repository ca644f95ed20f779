"""The Gymnasium environment: registered ids, both env checkers, action codec, masks."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env as gym_check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env

from tests.helpers import REPLAY, ROOT
from tuner.env import register_envs
from tuner.env.codec import ActionCodec
from tuner.env.tuning_env import TuningEnv


def test_every_task_file_is_registered():
    ids = register_envs(ROOT / "envs")
    assert {"infertune/tiny-cpu-v0", "infertune/smollm2-cpu-v0", "infertune/smollm2-cpu-replay-v0"} <= set(ids)
    assert all(name in gym.registry for name in ids)


@pytest.mark.parametrize("task", ["tiny-cpu", "smollm2-cpu-replay"])
def test_env_passes_both_checkers(tmp_path, task):
    register_envs(ROOT / "envs")
    # a budget of 4: the checkers take a few steps, and each is a real measurement on tiny-cpu
    env = gym.make(f"infertune/{task}-v0", runs_dir=str(tmp_path), budget=4)
    try:
        gym_check_env(env.unwrapped, skip_render_check=True)
        sb3_check_env(env.unwrapped)
        assert env.unwrapped.session.spent <= 4
    finally:
        env.close()


def test_step_measures_the_decoded_config(tmp_path):
    env = TuningEnv(str(REPLAY), runs_dir=str(tmp_path), budget=3)
    observation, _ = env.reset(seed=0)
    assert env.observation_space.contains(observation)
    config = {"batch_size": 16, "dtype": "bfloat16", "quantization": "none", "attn_implementation": "sdpa",
              "cache_implementation": "dynamic", "compile": False, "shard_count": 1}
    action = env.unwrapped.codec.encode(config)
    observation, reward, terminated, truncated, info = env.step(action)
    record = env.session.records[-1]
    assert record.config == config and info["status"] == record.status == "ok"
    assert reward == pytest.approx(record.objective) and not terminated and not truncated
    _, repeated_reward, _, _, _ = env.step(action)  # same config again in this episode: cached and penalized
    # answered from the earlier record (not recorded again) and penalized
    assert len(env.session.records) == env.session.repeats == 1 and repeated_reward == pytest.approx(reward - 1.0)
    assert env.session.spent == 1
    env.close()


def test_truncates_exactly_at_budget(tmp_path):
    env = TuningEnv(str(REPLAY), runs_dir=str(tmp_path), budget=2)
    env.reset(seed=0)
    codec = env.codec
    configs = [dict(c) for c in env.session.evaluator.measurer.configs()[:3]]
    flags = [env.step(codec.encode(config))[3] for config in configs]
    assert flags == [False, True, True] and env.session.spent == 2
    env.close()


def test_codec_round_trip_and_masks(tiny_task):
    codec = ActionCodec(tiny_task.space)
    config = tiny_task.space.complete({"batch_size": 8, "dtype": "bfloat16", "compile": True})
    assert codec.decode(codec.encode(config)) == config
    assert codec.one_hot(config).sum() == len(tiny_task.space.knobs)
    env = TuningEnv(str(ROOT / "envs" / "tiny-cpu.yaml"), runs_dir="/nonexistent")
    mask = env.action_masks()
    assert mask.shape == (int(codec.nvec.sum()),) and mask.dtype == np.bool_
    offsets = np.concatenate([[0], np.cumsum(codec.nvec)[:-1]])
    shard = tiny_task.space.names.index("shard_count")
    assert mask[offsets[shard]]  # one shard always runs; the core-count rule is unit/measure/test_feasibility.py's
    quant = tiny_task.space.names.index("quantization")
    assert not mask[offsets[quant] + 3]  # int4 weight-only needs CUDA
