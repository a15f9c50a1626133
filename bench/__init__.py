"""The benchmark (``make bench``): see bench/README.md. Nothing here is loaded by the site itself."""
