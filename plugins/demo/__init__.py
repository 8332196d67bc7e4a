"""The demo: the reference flows of ``config/reference-flows.yaml`` on every system's sandbox.

An application built on the other plugins, kept out of the core: :mod:`.plugin`
adds the ``lienthong demo`` command through ``lienthong_register_commands``, as
any third-party plugin would, and :mod:`.flows` (the sandboxes, the province's
seed data, the summary) is imported only when the command runs.
"""
