"""QEMU's structures read over a Target into records, in layers (tests/test_layers.py).

Docstrings name the C type an Object holds, as drgn's helpers do: `:param bs:
BlockDriverState` is the struct itself (an lvalue: members read as attributes),
`GSList *` a pointer Object."""
