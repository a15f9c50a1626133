"""Client ID metadata documents: the toolkit's SSRF-hardened fetcher, with the site's redirect rule.

The toolkit fetches a client's https ``client_id`` URL safely (https only, every resolved address
public, no redirects, a size and a time limit, cached on the application row); a document may
still name any redirect URI, so this adds the rule self-registration has: https, or http on a
loopback address (``endpoints.is_acceptable_redirect``). ``CIMD_METADATA_FETCHER`` names it.
"""

from __future__ import annotations

from oauth2_provider.cimd import CIMDError, SafeMetadataFetcher

from .endpoints import is_acceptable_redirect


class SiteMetadataFetcher(SafeMetadataFetcher):
    def fetch(self, client_id: str) -> tuple[dict, int]:
        metadata, max_age = super().fetch(client_id)
        uris = metadata.get("redirect_uris")
        if isinstance(uris, list) and not all(is_acceptable_redirect(uri) for uri in uris):
            raise CIMDError("redirect_uris must be https, or http on a loopback address")
        return metadata, max_age
