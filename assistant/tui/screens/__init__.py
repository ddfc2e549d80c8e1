"""Modal screens: help, confirmations, text prompts, the editor and the error dialog."""
