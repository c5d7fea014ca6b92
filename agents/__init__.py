"""LLM agents: policies, generation backends, GRPO, SEELE, MRT, IB-TPO and B-STaR."""

from rlvr_gym.agents.bstar import BSTaR, BSTaRConfig
from rlvr_gym.agents.grpo import GRPO, GRPOConfig, group_advantages, policy_loss
from rlvr_gym.agents.ibtpo import IBTPO, IBTPOConfig, TreeSampler, tree_metrics
from rlvr_gym.agents.monitors import (
    RESPONSE_PREFIX_KEY,
    MetricsLogger,
    RunExistsError,
    TrainingInterrupted,
    eff_rate,
    evaluate,
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
from rlvr_gym.agents.seele import SEELE, SEELEConfig
from rlvr_gym.agents.tiny import DEFAULT_ENV_ID, DEFAULT_ENV_KWARGS, TINY_MODEL_DIR

__all__ = [
    "BSTaR", "BSTaRConfig",
    "DEFAULT_ENV_ID", "DEFAULT_ENV_KWARGS", "GRPO", "GRPOConfig", "Generation",
    "GenerationBackend", "MRT", "MRTConfig", "MetaProver", "MetricsLogger", "Policy",
    "RESPONSE_PREFIX_KEY", "RunExistsError", "SEELE", "SEELEConfig", "SamplingConfig",
    "TINY_MODEL_DIR", "TokenBatch", "TrainingInterrupted", "TransformersBackend",
    "budget_forcing", "cross_entropy_on",
    "eff_rate", "evaluate", "fresh_run_dir",
    "group_advantages", "pass_at_k", "plot_curves", "policy_loss",
    "regret_traces", "summarize_regret",
    "IBTPO", "IBTPOConfig", "TreeSampler", "tree_metrics",
]
