"""The widgets of the chat screen: chat log, prompt, sidebar, status bar, thumbnails."""
