"""Past one machine (docs/scaling_out.md): environments and verification on Ray
(`ray_verifier`, `ray_env`; `pip install "rlvr-gym[ray]"`) and a data-parallel learner on
torch.distributed (`data_parallel`, started by `torchrun`), whose weights `fsdp` shards over
the ranks with `fsdp=True`. Nothing here is imported by the single-process path.
"""
