"""autosae: an autonomous research loop for sparse autoencoders on SynthSAEBench."""

__version__ = "0.1.0"
