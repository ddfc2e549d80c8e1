"""Built-in plugin: desktop actions (click, move, drag, scroll, type_text, press_keys, wait) at screenshot pixels."""
