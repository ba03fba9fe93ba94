"""The trusted harness: trains a variant in its own process and scores it here.

Import `autosae.harness.run` for the trusted side (its docstring lists the floors below it);
`autosae.sandboxed` is the variant's side and must stay free of anything that touches the
ground truth.
"""
