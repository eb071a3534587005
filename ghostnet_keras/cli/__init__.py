"""One thin module per console script of the core (`ghostnet-profile`, `ghostnet-convert`, ...)."""
