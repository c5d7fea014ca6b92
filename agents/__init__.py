"""LLM agents: policies, generation backends, GRPO, IB-TPO and B-STaR."""
