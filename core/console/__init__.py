"""The web console: the admin's pages over the store, and the CLI's actions behind buttons.

``app`` (Flask application and its safeguards), ``views`` (the pages), ``queries``
(every read of the store), ``actions`` (every change, audited), ``auth`` (logins,
roles, the limiter), ``i18n`` (Vietnamese first), ``services`` (what the pages
share), ``server`` (waitress on a thread), ``settings`` (the config section).
See docs/console.md.
"""
