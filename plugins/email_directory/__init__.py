"""The province's email system: its LDAP directory (sync, lookups) and mail delivery.

The hooks live in :mod:`.plugin` (listed in setup.cfg, group ``lienthong.builtins``); the sandbox
directory server for tests and demos is :class:`.slapd.TemporarySlapd`.
"""
