"""LLM agents: policies, generation backends, the trainer core, and GRPO, SEELE, MRT, IB-TPO
and B-STaR on it."""

from rlvr_gym.agents.bstar import BSTaR, BSTaRConfig
from rlvr_gym.agents.core import Trainer, TrainerConfig
from rlvr_gym.agents.grpo import GRPO, GRPOConfig, PolicyGradient, group_advantages, policy_loss
from rlvr_gym.agents.ibtpo import IBTPO, IBTPOConfig, TreeSampler, tree_metrics
from rlvr_gym.agents.monitors import (
    MetricsLogger,
    RunExistsError,
    TrainingInterrupted,
    eff_rate,
    fresh_run_dir,
    pass_at_k,
    plot_curves,
)
from rlvr_gym.agents.mrt import (
    MRT,
    MetaProver,
    MRTConfig,
    budget_forcing,
    regret_traces,
    summarize_regret,
)
from rlvr_gym.agents.policy import (
    Generation,
    GenerationBackend,
    Policy,
    SamplingConfig,
    TokenBatch,
    TransformersBackend,
    cross_entropy_on,
)
from rlvr_gym.agents.rollout import Group, Rollout, evaluate, sample_groups, score
from rlvr_gym.agents.seele import SEELE, SEELEConfig, hinted_env
from rlvr_gym.agents.tiny import DEFAULT_ENV_ID, DEFAULT_ENV_KWARGS, TINY_MODEL_DIR
from rlvr_gym.types import RESPONSE_PREFIX_KEY, split_prefix

__all__ = [
    "BSTaR", "BSTaRConfig", "DEFAULT_ENV_ID", "DEFAULT_ENV_KWARGS", "GRPO", "GRPOConfig",
    "Generation", "GenerationBackend", "Group", "MRT", "MRTConfig", "MetaProver", "MetricsLogger",
    "Policy", "PolicyGradient", "RESPONSE_PREFIX_KEY", "Rollout", "RunExistsError", "SEELE",
    "SEELEConfig", "SamplingConfig", "TINY_MODEL_DIR", "TokenBatch", "Trainer", "TrainerConfig",
    "TrainingInterrupted", "TransformersBackend", "budget_forcing", "cross_entropy_on", "eff_rate",
    "evaluate", "fresh_run_dir", "group_advantages", "hinted_env", "pass_at_k", "plot_curves",
    "policy_loss", "regret_traces", "sample_groups", "score", "split_prefix", "summarize_regret",
    "IBTPO", "IBTPOConfig", "TreeSampler", "tree_metrics",
]
