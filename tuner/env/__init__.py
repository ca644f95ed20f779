"""The Gymnasium face of infertune: a TuningEnv per task, registered as ``infertune/<task>-v0``.

Importing this package registers ``./envs/*.yaml`` (or ``$INFERTUNE_ENVS_DIR``), so
``gym.make("tuner.env:infertune/tiny-cpu-v0")`` works from a checkout.
"""

from tuner.env.registration import env_id, register_envs

register_envs()

__all__ = ["env_id", "register_envs"]
