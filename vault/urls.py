"""Agent API and agent pages (filled in by the agent-access work)."""

urlpatterns: list = []
