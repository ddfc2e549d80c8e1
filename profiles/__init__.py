"""Profiles shipped with the assistant (TOML files), installed as package data of `assistant_profiles`."""
