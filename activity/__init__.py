"""The audit trail: an append-only record of what happened to a profile or its tokens.

Every app that records activity declares its own kinds (``<app>/activity_kinds.py``) and registers
them here in its ``AppConfig.ready()``; this app imports nothing of the site's own.
"""
