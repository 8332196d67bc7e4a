"""JSON/REST adapter: systems that speak JSON over HTTP, configured not coded; and the
SANDBOXES of two of them (a provincial one-stop-shop system, the national public-service
portal) for tests and demos.
"""
