"""Built-in plugin: `assistant serve`, an OpenAI-compatible HTTP server over the profile's model backend."""
