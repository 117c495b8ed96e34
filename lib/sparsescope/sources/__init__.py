"""Sources: where models and text come from — the model registry, checkpoint files read tensor by tensor,
the text corpus, and speech for the Whisper stand-in."""
