"""Scope names in plain words: what a person is agreeing to, for the common Google and GitHub scopes.

Pages, mails and commands show the phrase, with the raw name kept close (a ``title`` on pages, in
brackets in plain text): people read "See your Google Drive files", the agent and the provider
still speak ``https://www.googleapis.com/auth/drive.readonly``. A scope not listed here is shown as
its raw name, never guessed at. The phrases follow the providers' own consent screens.
"""

from __future__ import annotations

GOOGLE_SCOPE_PREFIX = "https://www.googleapis.com/auth/"

_OPENID = {
    "openid": "Confirm who you are",
    "email": "See your email address",
    "profile": "See your name and profile picture",
    "offline_access": "Keep access while you are away",
}

#: Google's URL scopes, by the part after ``GOOGLE_SCOPE_PREFIX``.
_GOOGLE = {
    "userinfo.email": "See your email address",
    "userinfo.profile": "See your name and profile picture",
    "drive": "See, edit, create and delete all your Google Drive files",
    "drive.readonly": "See your Google Drive files",
    "drive.file": "See and change only the Google Drive files you use with this site",
    "drive.metadata.readonly": "See the names and details of your Google Drive files",
    "drive.appdata": "Keep this site's own data in your Google Drive",
    "gmail.readonly": "Read your Gmail messages and settings",
    "gmail.send": "Send email as you from Gmail",
    "gmail.compose": "Write drafts and send email as you from Gmail",
    "gmail.modify": "Read, write, send and organise your Gmail messages (not delete them forever)",
    "gmail.labels": "See and change your Gmail labels",
    "gmail.metadata": "See your Gmail message headers and labels, not the messages themselves",
    "calendar": "See, edit, share and delete all your Google calendars",
    "calendar.readonly": "See your Google calendars and their events",
    "calendar.events": "See and edit the events on all your Google calendars",
    "calendar.events.readonly": "See the events on all your Google calendars",
    "contacts": "See, edit and delete your Google contacts",
    "contacts.readonly": "See your Google contacts",
    "spreadsheets": "See, edit, create and delete your Google Sheets",
    "spreadsheets.readonly": "See your Google Sheets",
    "documents": "See, edit, create and delete your Google Docs",
    "documents.readonly": "See your Google Docs",
    "tasks": "See and change your Google Tasks",
    "tasks.readonly": "See your Google Tasks",
    "youtube.readonly": "See your YouTube account",
}

_GOOGLE_FULL = {
    "https://mail.google.com/": "Read, write, send and permanently delete all your Gmail messages",
}

_GITHUB = {
    "repo": "Read and change all your GitHub repositories, private ones too",
    "public_repo": "Read and change your public GitHub repositories",
    "repo:status": "See and set commit statuses in your GitHub repositories",
    "repo_deployment": "See and start deployments of your GitHub repositories",
    "repo:invite": "Accept and decline invitations to GitHub repositories",
    "security_events": "See and manage security alerts of your GitHub repositories",
    "delete_repo": "Delete your GitHub repositories",
    "user": "See and change your GitHub profile",
    "read:user": "See your GitHub profile",
    "user:email": "See your GitHub email addresses",
    "user:follow": "Follow and unfollow people on GitHub",
    "read:org": "See your GitHub organisations and teams",
    "write:org": "See and change your GitHub organisation and team memberships",
    "admin:org": "Fully manage your GitHub organisations and their teams",
    "gist": "Create and change your GitHub gists",
    "notifications": "See your GitHub notifications",
    "workflow": "Change the GitHub Actions workflows of your repositories",
    "read:packages": "Download your GitHub packages",
    "write:packages": "Publish GitHub packages",
    "delete:packages": "Delete your GitHub packages",
    "read:public_key": "See your SSH keys on GitHub",
    "write:public_key": "Add SSH keys to your GitHub account",
    "admin:public_key": "Fully manage your SSH keys on GitHub",
    "read:gpg_key": "See your GPG keys on GitHub",
    "write:gpg_key": "Add GPG keys to your GitHub account",
    "admin:gpg_key": "Fully manage your GPG keys on GitHub",
    "read:repo_hook": "See the webhooks of your GitHub repositories",
    "write:repo_hook": "Add and change webhooks of your GitHub repositories",
    "admin:repo_hook": "Fully manage webhooks of your GitHub repositories",
    "read:project": "See your GitHub projects",
    "project": "See and change your GitHub projects",
    "read:discussion": "See your GitHub team discussions",
    "write:discussion": "Take part in your GitHub team discussions",
    "codespace": "Create and manage your GitHub codespaces",
}


def scope_phrase(scope: str) -> str:
    """What ``scope`` lets the holder do, in a person's words; "" for a scope not in the table."""
    if scope.startswith(GOOGLE_SCOPE_PREFIX):
        return _GOOGLE.get(scope.removeprefix(GOOGLE_SCOPE_PREFIX), "")
    return _OPENID.get(scope) or _GOOGLE_FULL.get(scope) or _GITHUB.get(scope, "")


def short_name(scope: str) -> str:
    """The raw name without Google's URL prefix (``drive.readonly``): small print a phone can fit."""
    return scope.removeprefix(GOOGLE_SCOPE_PREFIX) or scope


def scope_text(scope: str) -> str:
    """For plain text (mail, commands): ``See your Google Drive files (drive.readonly)``."""
    phrase = scope_phrase(scope)
    return f"{phrase} ({short_name(scope)})" if phrase else scope
