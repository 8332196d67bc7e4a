"""The province's email system: its LDAP directory (sync, lookups) and mail delivery.

The hooks live in :mod:`.plugin` (listed in ``BUILTIN_PLUGINS``); the sandbox
directory server for tests and demos is :class:`.slapd.TemporarySlapd`.
"""
