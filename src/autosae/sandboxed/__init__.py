"""The untrusted side of the harness: the code that runs in the variant's process.

Everything in this package runs inside the sandbox, next to the variant's own code, so
nothing here is trusted: whatever it sends back is checked by the harness (autosae.harness),
which never unpickles it. The package must not import autosae.harness or autosae.bench (the
import guard blocks both, and the sandbox hides their files); the trusted side may import
from here (the protocol, the spec), never the other way round.
"""
