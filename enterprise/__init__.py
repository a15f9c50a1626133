"""Enterprise (SAML) connections: companies' identity providers, configured by staff, as a way in."""
