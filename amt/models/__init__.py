"""Transcription models: plain ``nn.Module``s mapping spectra to note logits."""
