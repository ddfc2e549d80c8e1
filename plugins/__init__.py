"""Built-in plugins of the assistant, installed as the `assistant_plugins` package."""
