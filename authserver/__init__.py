"""The site as an OAuth 2.1 / OpenID Connect authorization server for agent applications and MCP clients.

Built on django-oauth-toolkit (its models, endpoints, PKCE, refresh rotation, DCR and CIMD); this app
adds what it lacks: consent a person understands (with sudo mode for vault access), the RFC 8693
token exchange of a site-issued token for a provider token from the vault, audience-bound
introspection, and the page where a person sees and removes an application's access.
"""
