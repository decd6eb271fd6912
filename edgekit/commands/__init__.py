"""One module per CLI command; each is thin: parse, build config, call the API, render."""
