"""Converters from the authors' PyTorch checkpoints to jaxreenact (Orbax) checkpoints.

Each `converters/<name>.py` offers `load_torch(path, ...) -> (module, variables)` and a CLI
`python -m converters.<name> SRC DST` writing a directory that `jaxreenact.weights.load(DST)` reads back.
PyTorch is imported only here (and in tests), never by the library.
"""
