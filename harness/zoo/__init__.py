"""The model zoo: TOML specs, a deterministic cached builder, and the public/private store."""
