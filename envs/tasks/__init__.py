"""The built-in tasks, one module each: its source, its options and its `register_task` call.

`import rlvr_gym` imports every module here (`rlvr_gym.registration.register_envs`), so a new
built-in task is one new file in this folder. The import order is the order `rlvr-gym envs`
lists the ids in, so what `rlvr_gym` imports before `register_envs` runs (`rlvr_gym.envs`'s
`__init__` included) must not import a task module. See docs/adding_a_task.md.
"""
